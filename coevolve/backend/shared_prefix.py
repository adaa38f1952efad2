"""A GRPO group's prompt run once in the update, not once per answer.

The answers of a GRPO group share their prompt; packed one after another, a micro-batch of 16
solver sequences (4 prompts x 4 answers, ~25 prompt and ~10 answer tokens each) carries each
prompt 4 times: 560 tokens, of which 300 are repeated prompt. Laid out as [prompt, answer 1,
answer 2, ...] with an attention mask in which each answer sees the prompt and itself only, and
position ids that continue the prompt's in every answer, the same log-probabilities come out of
about half the tokens; the prompt's activations receive the gradients of all its answers, as the
separate copies' summed would. `shared_layout` builds that layout for verl's packed micro-batch
(`coevolve/backend/response_logits.py` feeds it to the model when some prompt repeats).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SharedLayout:
    """The packed micro-batch with each distinct prompt once.

    `source[j]`: the packed (original) index of the layout's token j; `mask`: (1, 1, T, T),
    True where a query may attend to a key; `keep`: for each original position that predicts a
    response token (in order), its position in the layout (a prompt's last token is kept once per
    answer that follows it).
    """

    source: torch.Tensor
    mask: torch.Tensor
    keep: torch.Tensor


def shared_layout(input_ids: torch.Tensor, offsets: torch.Tensor, response_lengths: torch.Tensor) -> SharedLayout | None:
    """The layout of a packed micro-batch (`input_ids` flat, sequence i at offsets[i]:offsets[i+1],
    its last `response_lengths[i]` tokens its answer), or None when no prompt repeats."""
    starts, ends = offsets[:-1].tolist(), offsets[1:].tolist()
    answers = response_lengths.tolist()
    ids = input_ids.tolist()
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, (start, end, answer) in enumerate(zip(starts, ends, answers, strict=True)):
        groups.setdefault(tuple(ids[start:end - answer]), []).append(i)
    if len(groups) == len(starts):
        return None
    source: list[int] = []
    group_of: list[int] = []  # per layout token: its prompt's number
    answer_of: list[int] = []  # per layout token: its sequence's number, -1 in a prompt
    keep_of: dict[int, list[int]] = {}  # sequence -> layout positions predicting its answer
    for number, (prompt, members) in enumerate(groups.items()):
        first = starts[members[0]]
        source += range(first, first + len(prompt))
        group_of += [number] * len(prompt)
        answer_of += [-1] * len(prompt)
        last_prompt_token = len(source) - 1
        for i in members:
            begin = len(source)
            source += range(ends[i] - answers[i], ends[i])
            group_of += [number] * answers[i]
            answer_of += [i] * answers[i]
            # the prompt's last token predicts the answer's first, the answer's tokens the rest
            keep_of[i] = [last_prompt_token, *range(begin, begin + answers[i] - 1)][:answers[i]]
    group = torch.tensor(group_of)
    answer = torch.tensor(answer_of)
    position = torch.arange(len(source))
    mask = ((group[:, None] == group[None, :]) & (position[None, :] <= position[:, None])
            & ((answer[None, :] == -1) | (answer[None, :] == answer[:, None])))
    keep = [p for i in range(len(starts)) for p in keep_of[i]]
    return SharedLayout(source=torch.tensor(source), mask=mask[None, None], keep=torch.tensor(keep, dtype=torch.long))
