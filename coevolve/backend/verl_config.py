"""A recipe's role settings, translated into verl 0.9.1's `ppo_trainer` configuration.

Each role (challenger, solver) gets its own verl config: GRPO with a KL loss, one optimizer
update per step (mini-batch = the step's batch), verl's legacy trainer driven phase by phase
from our process. Keys a recipe sets under `<role>.verl` are applied last, so anything verl
offers can be reached from a recipe without a code change.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coevolve.recipe.schema import Recipe, RoleConfig

MANAGER_CLASS = "coevolve.backend.verl_trainer.ScoringAgentLoopManager"


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings to dotted keys: {"a": {"b": 1}} -> {"a.b": 1}."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_value(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, str) and not _PLAIN.fullmatch(value):
        return _quoted(value)
    return str(value)


# What Hydra's override grammar reads as itself unquoted; anything else (`,` `=` `'` `[` `]`
# spaces, ...) is quoted, so that a run_dir or model.path holding them stays one value.
_PLAIN = re.compile(r"[A-Za-z0-9_./:+-]+")


def _quoted(text: str) -> str:
    """`text` as a single-quoted Hydra string: quotes escaped, and the backslashes before a
    quote or at the end doubled (Hydra reads other backslashes as themselves)."""
    return "'" + re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), text) + "'"


_PRECISION = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def mixed_precision(dtype: str) -> dict[str, str]:
    """FSDP mixed precision computing in `dtype`, reducing gradients in float32."""
    return {"param_dtype": _PRECISION[dtype], "reduce_dtype": "fp32", "buffer_dtype": "fp32"}


def role_settings(recipe: Recipe, role: str, model_path: str, run_dir: Path) -> dict[str, Any]:
    """verl keys and values for one role (a leading '+' adds a key verl's YAML lacks)."""
    cfg: RoleConfig = getattr(recipe, role)
    cpu = recipe.resources.device == "cpu"
    reuse_log_probs = reuses_rollout_log_probs(recipe, cfg)
    settings: dict[str, Any] = {
        "algorithm.adv_estimator": "grpo",
        "algorithm.use_kl_in_reward": False,
        "data.train_batch_size": cfg.batch_size,
        "data.max_prompt_length": cfg.max_prompt_tokens,
        "data.max_response_length": cfg.max_new_tokens,
        "data.dataloader_num_workers": 0,  # the curriculum sampler must run in the driver
        "data.filter_overlong_prompts": False,
        "actor_rollout_ref.model.path": model_path,
        "actor_rollout_ref.model.lora_rank": recipe.model.lora_rank,
        "actor_rollout_ref.model.lora_alpha": recipe.model.lora_alpha,
        "+actor_rollout_ref.model.override_config.attn_implementation": recipe.model.attn_implementation,
        "actor_rollout_ref.actor.strategy": "fsdp2",
        "actor_rollout_ref.actor.optim.lr": cfg.lr,
        "actor_rollout_ref.actor.optim.weight_decay": cfg.weight_decay,
        "actor_rollout_ref.actor.ppo_mini_batch_size": cfg.batch_size,
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "actor_rollout_ref.actor.use_kl_loss": cfg.kl_coef > 0,
        "actor_rollout_ref.actor.kl_loss_coef": cfg.kl_coef,
        "actor_rollout_ref.actor.kl_loss_type": cfg.kl_type,
        "actor_rollout_ref.actor.entropy_coeff": 0,
        "actor_rollout_ref.actor.fsdp_config.dtype": recipe.model.dtype,
        "actor_rollout_ref.ref.fsdp_config.dtype": recipe.model.dtype,
        # verl's default computes in bf16 (params and autocast) whatever `dtype` says.
        "+actor_rollout_ref.actor.fsdp_config.mixed_precision": mixed_precision(recipe.model.dtype),
        "+actor_rollout_ref.ref.fsdp_config.mixed_precision": mixed_precision(recipe.model.dtype),
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "actor_rollout_ref.rollout.name": recipe.resources.rollout,
        "actor_rollout_ref.rollout.n": cfg.group_size,
        "actor_rollout_ref.rollout.temperature": cfg.temperature,
        "actor_rollout_ref.rollout.top_p": cfg.top_p,
        "actor_rollout_ref.rollout.dtype": recipe.model.dtype,
        "actor_rollout_ref.rollout.tensor_model_parallel_size": 1,
        # With these, the actor takes the rollout's log-probs as pi_old instead of a forward
        # pass over every response (see reuses_rollout_log_probs).
        "actor_rollout_ref.rollout.calculate_log_probs": reuse_log_probs,
        "algorithm.rollout_correction.bypass_mode": reuse_log_probs,
        "+actor_rollout_ref.rollout.agent.agent_loop_manager_class": MANAGER_CLASS,
        "+actor_rollout_ref.rollout.custom.server_prefix": role,
        "reward.num_workers": 0,  # rewards are computed for the whole batch in the driver
        "critic.enable": False,
        "trainer.logger": ["console"],  # replaced by coevolve's tracker during fit()
        "trainer.project_name": "coevolve",
        "trainer.experiment_name": f"{recipe.name}-{role}",
        "trainer.default_local_dir": str(Path(run_dir) / "verl" / role),
        "trainer.val_before_train": False,
        "trainer.test_freq": -1,
        "trainer.save_freq": -1,
        "trainer.resume_mode": "disable",  # coevolve restores checkpoints itself
        "trainer.n_gpus_per_node": recipe.resources.gpus_per_node,
        "trainer.nnodes": recipe.resources.nnodes,
        "trainer.total_epochs": 1_000_000,  # phases are bounded by steps, never by epochs
        "trainer.use_v1": False,  # the v1 trainer hangs on the CPU
        "actor_rollout_ref.actor.checkpoint.save_contents": ["model", "optimizer", "extra"],
        "actor_rollout_ref.actor.checkpoint.load_contents": ["model", "optimizer", "extra"],
    }
    if cpu:
        settings.update(_cpu_settings(recipe))
    settings.update(flatten(cfg.verl))
    return settings


def reuses_rollout_log_probs(recipe: Recipe, cfg: RoleConfig) -> bool:
    """Whether the actor uses the rollout's log-probs as pi_old (verl's bypass mode).

    With one policy update per step (ppo_mini_batch_size = the batch), pi_old is the policy
    that generated the batch, so verl's recomputation of its log-probs (a forward pass over
    every response, a visible share of a CPU challenger step) only repeats what the rollout
    knew. coevolve's HF rollout records log p(token) under the same weights and the same
    temperature-scaled distribution the actor computes, provided no nucleus or LoRA-merge
    changes it; vLLM's log-probs follow vLLM's own conventions, so GPU runs recompute.
    """
    return recipe.resources.rollout == "hf" and cfg.top_p == 1.0 and recipe.model.lora_rank == 0


def _cpu_settings(recipe: Recipe) -> dict[str, Any]:
    return {
        "trainer.device": "cpu",
        # Packed sequences, no padding: transformers builds the block-causal mask of a packed row
        # from its position ids for sdpa, and `response_logits` runs the head where the loss reads.
        "actor_rollout_ref.model.use_remove_padding": True,
        # A group's answers stay side by side, so that each micro-batch holds whole groups and
        # their shared prompt runs once (`shared_prefix`); with one worker there is nothing to
        # balance between ranks.
        "trainer.balance_batch": False,
        "actor_rollout_ref.model.enable_gradient_checkpointing": False,
        "actor_rollout_ref.actor.use_torch_compile": False,
        "actor_rollout_ref.rollout.agent.num_workers": 1,  # one agent loop, in the driver (backend/agent_loop.py)
        # LoRA adapters reach the HF rollout only as merged weights.
        "actor_rollout_ref.model.lora.merge": recipe.model.lora_rank > 0,
        "+actor_rollout_ref.rollout.custom.max_batch": recipe.vote.batch_size,
        "+actor_rollout_ref.rollout.custom.engine": recipe.resources.cpu_engine,
    }


def overrides(settings: Mapping[str, Any]) -> list[str]:
    """Hydra override strings for `settings`."""
    return [f"{key}={_value(value)}" for key, value in settings.items()]


def compose(settings: Mapping[str, Any]):
    """verl's `ppo_trainer` config with `settings` applied (hydra compose API)."""
    import verl
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    config_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return hydra_compose(config_name="ppo_trainer", overrides=overrides(settings))
