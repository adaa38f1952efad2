"""Will the run fit in memory? The estimated peak of a CPU run, checked before anything starts.

On the CPU every process of a run shares the machine's RAM: the driver (which also runs both
roles' agent loops, backend/agent_loop.py), Ray's helpers, and for each role an FSDP trainer
worker and a rollout server.
A run that does not fit would be killed by Ray's memory monitor minutes in; this module says so
before the start, with the recipe keys that lower the peak and by how much. The estimate is
arithmetic on the recipe and the model's `config.json` (`estimate_memory`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from coevolve.domains.base import Domain
from coevolve.recipe.load import RecipeError
from coevolve.recipe.schema import Recipe
from coevolve.records import Question
from coevolve.selfplay.steps import challenger_message

GIB = 2**30
# Measured footprints at rest, GiB (`make bench-iteration`, per-process PSS after start-up,
# weights excluded where listed separately): see docs/results.md.
BASE_GIB = {"driver": 0.55, "ray helpers": 0.6, "trainer worker": 0.5, "rollout server": 1.0}
ACTIVATION_FLOATS_HIDDEN = 14  # float32 values kept per token, layer and hidden unit
ACTIVATION_FLOATS_MLP = 4  # ... per MLP unit (gate, up, their product, activation)
LOGIT_COPIES = 3
CHARS_PER_TOKEN = 3.5  # English and digits in a BPE vocabulary; errs towards more tokens
TEMPLATE_TOKENS = 16  # the chat template's turn markers (SmolLM2's: 15)
DEFAULT_SYSTEM_TOKENS = 24  # a model's own system turn, when the recipe keeps it (SmolLM2's: 16)
THIN_MARGIN = 0.85  # warn when the peak takes more than this share of the available memory


class MemoryPreflightError(RecipeError):
    """The recipe's estimated peak does not fit in the memory available."""


@dataclass(frozen=True)
class ModelShape:
    parameters: int
    layers: int
    hidden: int
    intermediate: int
    kv_dim: int  # key/value heads x head size
    vocab: int


def model_shape(model_dir: str | Path) -> ModelShape:
    """A decoder-only transformer's shape from its Hugging Face `config.json`."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise RecipeError(f"model.path {model_dir}: no config.json to size the run's memory from")
    c = json.loads(path.read_text())
    heads = c["num_attention_heads"]
    head_dim = c.get("head_dim") or c["hidden_size"] // heads
    h, inter, layers, vocab = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
    kv_dim = c.get("num_key_value_heads", heads) * head_dim
    per_layer = h * heads * head_dim * 2 + h * kv_dim * 2 + 3 * h * inter + 2 * h
    embeddings = vocab * h * (1 if c.get("tie_word_embeddings", True) else 2)
    return ModelShape(embeddings + layers * per_layer + h, layers, h, inter, kv_dim, vocab)


@dataclass(frozen=True)
class MemoryEstimate:
    fixed: int
    training: dict[str, int]  # role -> its update's extra bytes (optimizer state and activations)
    voting: int

    @property
    def peak(self) -> int:
        return self.fixed + max([*self.training.values(), self.voting])


def estimate_memory(recipe: Recipe, shape: ModelShape, prompt_tokens: dict[str, int]) -> MemoryEstimate:
    """The estimated peak (bytes) of a CPU run of `recipe`; `prompt_tokens` per role.

    fixed: each process's footprint at rest (`BASE_GIB`, measured on the default run) plus the
    float32 weights in both trainer workers and in one rollout server (an idle role's server
    holds none, verl_trainer.py). training: the training role's gradients and AdamW moments (the
    idle role's are parked on disk), the two extra copies its server holds for a moment at each
    weight sync (the copy it is sent, and its model's weights while the engine packs them; the
    server keeps the packed copy only, generation/server.py), and one micro-batch's activations (per layer and token what autograd
    keeps, `ACTIVATION_FLOATS_*`; `LOGIT_COPIES` of the logits at response tokens only,
    backend/response_logits.py). voting: a server's batch of `vote.batch_size` rows, its KV cache
    and logits. peak = fixed + the larger of (the costlier role's training, the vote batch).
    """
    b = BASE_GIB
    per_role = b["trainer worker"] + b["rollout server"]
    fixed = (b["driver"] + b["ray helpers"] + 2 * per_role) * GIB
    fixed += 3 * 4 * shape.parameters  # the weights of two trainer workers and one awake server
    per_token = shape.layers * (ACTIVATION_FLOATS_HIDDEN * shape.hidden + ACTIVATION_FLOATS_MLP * shape.intermediate) * 4
    training = {}
    for role in ("challenger", "solver"):
        cfg = getattr(recipe, role)
        state = 12 * shape.parameters if recipe.model.lora_rank == 0 else 0
        state += 2 * 4 * shape.parameters  # the training role's server at a weight sync (see above)
        sequences = min(cfg.micro_batch_size, cfg.batch_size * cfg.group_size)
        tokens = sequences * (prompt_tokens[role] + cfg.max_new_tokens)
        training[role] = state + tokens * per_token + sequences * cfg.max_new_tokens * LOGIT_COPIES * shape.vocab * 4
    v, c = recipe.vote, recipe.challenger
    kv = 2 * shape.layers * shape.kv_dim * 4

    def batch(rows: int, tokens: int) -> int:  # a server's batch: its KV cache and logits
        return rows * (tokens * kv + LOGIT_COPIES * shape.vocab * 4)

    # the solver's votes, and the challenger writing the dataset's questions (same batch size)
    voting = max(batch(v.batch_size, prompt_tokens["solver"] + v.max_new_tokens),
                 batch(min(v.batch_size, recipe.dataset.questions), prompt_tokens["challenger"] + c.max_new_tokens))
    return MemoryEstimate(int(fixed), training, int(voting))


# Keys that lower the peak, and the value each is tried at (a function of the recipe).
_LOWER = {
    "challenger.micro_batch_size": lambda r: max(1, r.challenger.micro_batch_size // 2),
    "solver.micro_batch_size": lambda r: max(1, r.solver.micro_batch_size // 2),
    "vote.batch_size": lambda r: max(1, r.vote.batch_size // 2),
    "model.lora_rank": lambda r: r.model.lora_rank or 8,
}


def _with(recipe: Recipe, key: str, value) -> Recipe:
    section, name = key.split(".")
    return dataclasses.replace(recipe, **{section: dataclasses.replace(getattr(recipe, section), **{name: value})})


def savings(recipe: Recipe, shape: ModelShape, prompt_tokens: dict[str, int]) -> list[tuple[str, object, int]]:
    """(key, value, bytes saved) for each key of `_LOWER` that lowers the peak, largest first."""
    peak = estimate_memory(recipe, shape, prompt_tokens).peak
    rows = []
    for key, lower in _LOWER.items():
        value = lower(recipe)
        saved = peak - estimate_memory(_with(recipe, key, value), shape, prompt_tokens).peak
        if saved > 0:
            rows.append((key, value, saved))
    return sorted(rows, key=lambda row: -row[2])


def check_fits(recipe: Recipe, shape: ModelShape, prompt_tokens: dict[str, int], available: int) -> str | None:
    """Raise MemoryPreflightError if the estimated peak exceeds `available` bytes; a warning
    (returned) when it takes more than `THIN_MARGIN` of it; None when it fits with room."""
    peak = estimate_memory(recipe, shape, prompt_tokens).peak
    if peak <= THIN_MARGIN * available:
        return None
    keys = "; ".join(f"{key}={value} saves {saved / GIB:.1f} GiB" for key, value, saved in
                     savings(recipe, shape, prompt_tokens))
    told = (f"the run's estimated peak memory is {peak / GIB:.1f} GiB and {available / GIB:.1f} GiB are "
            f"available (MemAvailable)")
    if peak > available:
        raise MemoryPreflightError(f"{told}: it would be killed for memory. Lower the peak ({keys}) "
                                   "or free memory (close other programs) and start again")
    return f"{told}: little margin; other programs may push it out ({keys})"


def prompt_tokens(messages: dict[str, str], system_turn: str) -> dict[str, int]:
    """Estimated prompt tokens per role from one prompt text each and `model.system_turn`."""
    system = {"default": DEFAULT_SYSTEM_TOKENS, "none": 0}.get(system_turn, len(system_turn) / CHARS_PER_TOKEN)
    return {role: int(len(text) / CHARS_PER_TOKEN + TEMPLATE_TOKENS + system) for role, text in messages.items()}


def typical_prompts(recipe: Recipe, domain: Domain, categories: tuple[str, ...]) -> dict[str, str]:
    """One prompt text per role, as the run will send them (the challenger's with its seeds).

    The solver's question is a seed question of the domain; a domain without seeds gets one as
    long as the challenger may write (`challenger.max_new_tokens`).
    """
    shown = recipe.challenger.seeds_per_prompt
    seeds = domain.seed_questions(categories[0], max(1, shown), recipe.seed)
    longest = "x" * int(recipe.challenger.max_new_tokens * CHARS_PER_TOKEN)
    question = seeds[0] if seeds else Question("preflight", categories[0], longest, None)
    texts = [q.text for q in seeds[:shown]]
    return {"challenger": challenger_message(domain, categories[0], texts),
            "solver": domain.solver_prompt(question)}
