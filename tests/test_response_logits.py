"""The update's head at response positions only (coevolve/backend/response_logits.py) gives
verl's own log-probabilities and gradients, on the tiny model, through verl 0.9.1's engine."""

import pytest
import torch

pytest.importorskip("verl")

from coevolve.backend import response_logits  # noqa: E402

# prompt and response lengths of four sequences, left- and right-padded as verl's agent loop pads
PROMPTS, RESPONSES = [6, 4, 5, 3], [5, 2, 1, 4]
PROMPT_WIDTH, RESPONSE_WIDTH = 6, 5


def test_response_positions_are_the_slices_verl_reads():
    # sequences of 5 and 4 tokens with responses of 2 and 1: positions 2, 3 (predicting tokens 3
    # and 4) and 7 (predicting token 8)
    positions = response_logits.response_positions(torch.tensor([5, 4]), torch.tensor([2, 1]))
    assert positions.tolist() == [2, 3, 7]


def test_scattered_log_probs_keep_their_gradient():
    kept = torch.tensor([-1.0, -2.0], requires_grad=True)
    full = response_logits.scatter_log_probs(kept, torch.tensor([1, 3]), 5)
    assert full.tolist() == [0.0, -1.0, 0.0, -2.0, 0.0]
    (full * torch.arange(5.0)).sum().backward()
    assert kept.grad.tolist() == [1.0, 3.0]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from transformers import AutoModelForCausalLM

    from helpers.tiny_model import build_tiny_model

    path = build_tiny_model(tmp_path_factory.mktemp("tiny"))
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa")


# a micro-batch of GRPO groups: sequences with the same group number share their prompt
# (two groups of two, one of three, in the order verl's length balancing may leave them)
SHARED_GROUPS, SHARED_RESPONSES = [0, 1, 0, 2, 1, 2, 2], [5, 2, 1, 4, 3, 1, 5]
SHARED_PROMPTS = {0: 6, 1: 4, 2: 5}


def _micro_batch(vocab: int, *, packed: bool, shared: bool = False):
    """A verl update micro-batch: padded as the agent loop pads, then unpadded as `_update_actor` does."""
    from tensordict import TensorDict
    from verl.utils import tensordict_utils as tu
    from verl.workers.utils.padding import left_right_2_no_padding

    generator = torch.Generator().manual_seed(0)
    lengths, answers = ([SHARED_PROMPTS[g] for g in SHARED_GROUPS], SHARED_RESPONSES) if shared else (PROMPTS, RESPONSES)
    texts = {g: torch.randint(3, vocab, (n,), generator=generator) for g, n in SHARED_PROMPTS.items()}
    rows = len(lengths)
    prompts = torch.zeros(rows, PROMPT_WIDTH, dtype=torch.long)
    responses = torch.zeros(rows, RESPONSE_WIDTH, dtype=torch.long)
    attention = torch.zeros(rows, PROMPT_WIDTH + RESPONSE_WIDTH, dtype=torch.long)
    response_mask = torch.zeros(rows, RESPONSE_WIDTH, dtype=torch.long)
    for i, (p, r) in enumerate(zip(lengths, answers, strict=True)):
        prompts[i, PROMPT_WIDTH - p:] = (texts[SHARED_GROUPS[i]] if shared
                                         else torch.randint(3, vocab, (p,), generator=generator))
        responses[i, :r] = torch.randint(3, vocab, (r,), generator=generator)
        attention[i, PROMPT_WIDTH - p:PROMPT_WIDTH + r] = 1
        response_mask[i, :r] = 1
    batch = TensorDict({"prompts": prompts, "responses": responses, "input_ids": torch.cat([prompts, responses], 1),
                        "attention_mask": attention, "response_mask": response_mask,
                        "position_ids": (attention.cumsum(-1) - 1).clamp(min=0)}, batch_size=rows)
    batch = left_right_2_no_padding(batch)
    tu.assign_non_tensor(batch, use_remove_padding=packed, temperature=0.7, calculate_entropy=False)
    return batch, response_mask


def _response_log_probs(model, *, packed: bool, patched: bool, shared: bool = False):
    """verl's engine methods on the tiny model: response log-probs and the gradient of their sum."""
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead
    from verl.workers.utils.padding import no_padding_2_padding

    response_logits.install()
    engine = object.__new__(FSDPEngineWithLMHead)  # the attributes these two methods read
    engine.module, engine.use_ulysses_sp, engine.pad_to_length = model, False, None
    engine._get_packed_pad_size = lambda length: 0
    inputs = FSDPEngineWithLMHead.prepare_model_inputs
    outputs = FSDPEngineWithLMHead.prepare_model_outputs
    if not patched:
        inputs, outputs = inputs.__wrapped__, outputs.__wrapped__
    batch, mask = _micro_batch(model.config.vocab_size, packed=packed, shared=shared)
    model.zero_grad(set_to_none=True)
    model_inputs, output_args = inputs(engine, micro_batch=batch)
    output = model(**model_inputs, use_cache=False)
    log_probs = outputs(engine, output=output, output_args=output_args, micro_batch=batch,
                        logits_processor_func=None)["log_probs"]
    response = no_padding_2_padding(log_probs, batch) * mask
    response.sum().backward()
    return response.detach(), [p.grad.clone() for p in model.parameters()], model_inputs


def test_packed_response_head_matches_verls_padded_update(model):
    reference, reference_grads, _ = _response_log_probs(model, packed=False, patched=False)
    ours, grads, model_inputs = _response_log_probs(model, packed=True, patched=True)
    assert model_inputs["logits_to_keep"].numel() == sum(RESPONSES)  # the head ran where the loss reads
    assert (reference != 0).sum() == sum(RESPONSES)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, reference_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_unpacked_calls_are_left_to_verl(model):
    _, _, model_inputs = _response_log_probs(model, packed=False, patched=True)
    assert "logits_to_keep" not in model_inputs


def test_a_shared_prompt_runs_once_and_gives_verls_log_probs_and_gradients(model):
    reference, reference_grads, _ = _response_log_probs(model, packed=False, patched=False, shared=True)
    ours, grads, model_inputs = _response_log_probs(model, packed=True, patched=True, shared=True)
    # each of the three prompts once, then every answer
    assert model_inputs["input_ids"].shape[1] == sum(SHARED_PROMPTS.values()) + sum(SHARED_RESPONSES)
    assert model_inputs["attention_mask"].shape[-1] == model_inputs["input_ids"].shape[1]
    assert model_inputs["logits_to_keep"].numel() == sum(SHARED_RESPONSES)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, reference_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_the_shared_layout_lets_an_answer_see_its_prompt_and_itself_only():
    from coevolve.backend.shared_prefix import shared_layout

    # two sequences with prompt [7, 8] and answers [1, 2] and [3]; a third with prompt [9], answer [4, 5]
    ids = torch.tensor([7, 8, 1, 2, 7, 8, 3, 9, 4, 5])
    layout = shared_layout(ids, torch.tensor([0, 4, 7, 10]), torch.tensor([2, 1, 2]))
    assert ids[layout.source].tolist() == [7, 8, 1, 2, 3, 9, 4, 5]
    allowed = layout.mask[0, 0].int().tolist()
    assert allowed[4] == [1, 1, 0, 0, 1, 0, 0, 0]  # answer [3]: its prompt and itself, not [1, 2]
    assert allowed[3] == [1, 1, 1, 1, 0, 0, 0, 0]
    assert allowed[7] == [0, 0, 0, 0, 0, 1, 1, 1]
    # predicting 1, 2 | 3 | 4, 5: the prompt's last token serves both of its answers
    assert layout.keep.tolist() == [1, 2, 1, 5, 6]
    assert shared_layout(ids[:7], torch.tensor([0, 4, 7]), torch.tensor([2, 3])) is None  # no prompt repeats
