"""The co-evolution dashboard: TensorBoard's custom-scalars page, written into every run.

One page, top to bottom, answers the questions of a run in the order a user asks them: does
the solver get better, are its labels right, what is the challenger rewarded for, what does
it write, which questions survive and why not, where the curriculum goes, where time goes.
Each chart plots the tags its regexes match (TensorBoard's own matching), so a category's
curve appears without the layout naming it. verl's own metrics are logged under `verl/`.
"""

from __future__ import annotations

VERL_PREFIX = "verl"

LAYOUT: dict[str, dict[str, list[str]]] = {
    "1. solver: held-out accuracy and label quality": {
        "held-out greedy accuracy (all, and per category)": [r"^eval/accuracy(/.*)?$"],
        "pseudo-label accuracy (kept questions and solver batches, against the oracle)": [
            r"^dataset/pseudo_label_accuracy$", r"^solver/pseudo_label_accuracy$"],
        "label quality without an oracle (held-out majority votes, label flips)": [
            r"^eval/majority_vote_accuracy$", r"^eval/in_band_label_accuracy$", r"^dataset/label_flip_rate$"],
        "solver reward (agreement with the pseudo-label) and true reward": [
            r"^solver/reward_mean$", r"^solver/true_reward_mean$", r"^solver/informative_group_rate$"],
    },
    "2. challenger: reward and questions": {
        "challenger reward and its parts": [
            r"^challenger/reward_mean$", r"^challenger/uncertainty_reward_mean$",
            r"^challenger/repetition_penalty_mean$"],
        "valid and copied question rates": [
            r"^challenger/format_valid_rate$", r"^challenger/copied_example_rate$",
            r"^dataset/kept_seed_copy_rate$"],
        "is it learning: new valid questions, groups with a gradient, in-band share": [
            r"^challenger/new_valid_rate$", r"^challenger/informative_group_rate$", r"^challenger/in_band_share$"],
        "solver agreement on the challenger's questions": [r"^challenger/solver_agreement_mean$"],
    },
    "3. dataset: questions kept and rejected": {
        "questions written, valid, kept": [
            r"^dataset/questions_generated$", r"^dataset/questions_format_valid$", r"^dataset/questions_kept$"],
        "questions rejected, by reason": [r"^dataset/rejected/"],
    },
    "4. curriculum": {
        "probability of each category (the solver's, also the dataset's)": [r"^curriculum/prob/"],
        "value of each category (mean |advantage|)": [r"^curriculum/q/"],
        "the challenger's own: probability of each category": [r"^curriculum/challenger/prob/"],
    },
    "5. time": {
        "seconds per phase and part": [r"^time/"],
    },
}


def unmatched_charts(layout: dict[str, dict[str, list[str]]], tags: list[str]) -> list[str]:
    """Charts of `layout` whose regexes match none of `tags` (they would show empty)."""
    import re

    return [f"{section} / {chart}" for section, charts in layout.items() for chart, patterns in charts.items()
            if not any(re.search(p, tag) for p in patterns for tag in tags)]
