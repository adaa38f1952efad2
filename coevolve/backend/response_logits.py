"""The update's logits only where its loss reads them: at the positions that predict a response.

A GRPO update reads log p(token) for response tokens only, yet verl's FSDP engine runs the
language-model head (49k x 576 on SmolLM2, a fifth of the model's matmul weights) and the
log-softmax over every packed position, prompt tokens included. On the CPU a solver prompt is
about two thirds of each sequence, a challenger prompt nine tenths. `install` wraps the engine's
`prepare_model_inputs` to ask the model for logits at those positions only (transformers'
`logits_to_keep`) and its `prepare_model_outputs` to put their log-probabilities back in place
(prompt positions hold 0: `verl.workers.utils.padding.no_padding_2_padding` never reads them).
Only the packed (`use_remove_padding`) path with no entropy, fused kernel, distillation,
sequence parallelism or bucket padding takes this route; every other call is verl's own. On that
route, with SDPA attention, a prompt that several sequences of the micro-batch share runs once
(`coevolve/backend/shared_prefix.py`).
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from coevolve.backend.shared_prefix import shared_layout

KEEP = "coevolve_response_positions"  # output_args key: the packed positions whose logits exist
SHARE_PROMPTS = True  # run a repeated prompt once (tools/bench_update.py times both layouts)


def response_positions(sequence_lengths: torch.Tensor, response_lengths: torch.Tensor) -> torch.Tensor:
    """Packed positions whose next token is a response token: for each sequence the
    `response_length` positions ending one before the sequence's end (the slice
    `no_padding_2_padding` takes)."""
    ends = sequence_lengths.cumsum(0).tolist()
    pieces = [torch.arange(end - length - 1, end - 1) for end, length in
              zip(ends, response_lengths.tolist(), strict=True)]
    return torch.cat(pieces) if pieces else torch.zeros(0, dtype=torch.long)


def scatter_log_probs(kept: torch.Tensor, positions: torch.Tensor, total: int) -> torch.Tensor:
    """Log-probs at `positions` of a packed sequence of `total` tokens, zero elsewhere
    (differentiable in `kept`)."""
    return kept.new_zeros(total).index_copy(0, positions, kept)


def _response_lengths(micro_batch: Any) -> torch.Tensor:
    """Each sequence's response length, read as `no_padding_2_padding` reads it."""
    prompts, responses = micro_batch["prompts"], micro_batch["responses"]
    if responses.is_nested:
        return responses.offsets().diff()
    return micro_batch["attention_mask"][:, prompts.shape[1]:].sum(dim=1)


def _eligible(micro_batch: Any, output_args: dict[str, Any], model_inputs: dict[str, Any]) -> bool:
    from verl.utils import tensordict_utils as tu

    def flag(key: str, default: bool) -> bool:
        return bool(tu.get_non_tensor_data(data=micro_batch, key=key, default=default))

    off = ("use_fused_kernels", "calculate_entropy", "calculate_sum_pi_squared", "distillation_use_topk",
           "distillation_only")
    return (flag("use_remove_padding", True) and not any(flag(key, False) for key in off)
            and output_args.get("pad_size", 0) == 0 and "input_ids_rmpad_rolled" in output_args
            and model_inputs.get("attention_mask") is None and model_inputs["input_ids"].dim() == 2
            and "prompts" in micro_batch and "responses" in micro_batch)


def _patched_inputs(original):
    @functools.wraps(original)
    def prepare_model_inputs(self, micro_batch):
        model_inputs, output_args = original(self, micro_batch=micro_batch)
        if getattr(self, "use_ulysses_sp", False) or not _eligible(micro_batch, output_args, model_inputs):
            return model_inputs, output_args
        offsets = micro_batch["input_ids"].offsets()
        answers = _response_lengths(micro_batch)
        positions = response_positions(offsets.diff(), answers).to(model_inputs["input_ids"].device)
        output_args[KEEP] = positions  # the rows of the head's output, in the packed order
        model_inputs["logits_to_keep"] = positions
        if SHARE_PROMPTS and _attention(self.module) == "sdpa" and model_inputs["position_ids"].dim() == 2:
            layout = shared_layout(model_inputs["input_ids"][0], offsets, answers)
            if layout is not None:
                model_inputs["input_ids"] = model_inputs["input_ids"][:, layout.source]
                model_inputs["position_ids"] = model_inputs["position_ids"][:, layout.source]
                model_inputs["attention_mask"] = layout.mask.to(model_inputs["input_ids"].device)
                model_inputs["logits_to_keep"] = layout.keep.to(model_inputs["input_ids"].device)
        return model_inputs, output_args

    prepare_model_inputs.coevolve_patched = True
    return prepare_model_inputs


def _attention(module: Any) -> str | None:
    return getattr(getattr(module, "config", None), "_attn_implementation", None)


def _patched_outputs(original):
    @functools.wraps(original)
    def prepare_model_outputs(self, output, output_args, micro_batch, logits_processor_func):
        positions = output_args.get(KEEP)
        if positions is None:
            return original(self, output=output, output_args=output_args, micro_batch=micro_batch,
                            logits_processor_func=logits_processor_func)
        from verl.utils.torch_functional import logprobs_from_logits
        from verl.workers.engine.fsdp.transformer_impl import _scale_logits_by_temperature

        labels = output_args["input_ids_rmpad_rolled"]
        logits = _scale_logits_by_temperature(
            output.logits.squeeze(0), output_args["temperature_rmpad"][positions].unsqueeze(-1),
            is_unit_temperature=output_args.get("temperature_is_one", False))
        kept = logprobs_from_logits(logits=logits, labels=labels[positions], inplace_backward=True)
        log_probs = scatter_log_probs(kept, positions, labels.shape[0])
        cu_seqlens = micro_batch["input_ids"].offsets()
        return {"log_probs": torch.nested.nested_tensor_from_jagged(log_probs, cu_seqlens)}

    prepare_model_outputs.coevolve_patched = True
    return prepare_model_outputs


def install() -> None:
    """Wrap verl's FSDP language-model engine (idempotent)."""
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead as engine

    if not getattr(engine.prepare_model_inputs, "coevolve_patched", False):
        engine.prepare_model_inputs = _patched_inputs(engine.prepare_model_inputs)
    if not getattr(engine.prepare_model_outputs, "coevolve_patched", False):
        engine.prepare_model_outputs = _patched_outputs(engine.prepare_model_outputs)
