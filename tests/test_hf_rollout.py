"""The batching HF rollout server for verl, driven directly with asyncio (no Ray)."""

import asyncio
import json
import shutil
import time
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("verl")

from coevolve.backend.generation import replica as hf_replica  # noqa: E402
from coevolve.backend.generation import requests as hf_requests
from coevolve.backend.generation.server import HFRolloutServer, request_limit  # noqa: E402
from helpers.tiny_model import build_tiny_model  # noqa: E402

GREEDY = {"temperature": 0, "top_p": 1.0, "top_k": -1, "repetition_penalty": 1.0, "logprobs": False}
PROMPTS = [[5, 6, 7], [40, 41, 42, 43, 44, 45, 46], [7], [100, 9, 200, 31, 12], [300, 301]]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def full_state(path) -> dict:
    """The model's weights as the trainer sends them (the server's own model keeps only those
    its engine does not copy)."""
    from transformers import AutoModelForCausalLM

    return dict(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).state_dict())


def make_server(path, response_length=8, prompt_length=16, **custom) -> HFRolloutServer:
    config = SimpleNamespace(prompt_length=prompt_length, response_length=response_length, custom=custom)
    return HFRolloutServer(config, {"path": str(path)}, replica_rank=0)


def run_concurrently(server, prompts, params):
    """All requests in flight at once, as verl's agent loop sends them."""

    async def go():
        calls = [server.generate(p, dict(params), request_id=f"r{i}") for i, p in enumerate(prompts)]
        return await asyncio.gather(*calls)

    return asyncio.run(go())


def run_one_at_a_time(server, prompts, params):
    async def go():
        return [await server.generate(p, dict(params), request_id=f"r{i}") for i, p in enumerate(prompts)]

    return asyncio.run(go())


ENGINES = pytest.mark.parametrize("engine", hf_requests.ENGINES)


@ENGINES
def test_concurrent_requests_share_batches_and_match_one_at_a_time(tiny, engine):
    server = make_server(tiny, engine=engine)
    batched = run_concurrently(server, PROMPTS, GREEDY)
    assert server.stats()["batches"] == 1 and server.stats()["requests"] == len(PROMPTS)
    server.reset_stats()
    single = run_one_at_a_time(server, PROMPTS, GREEDY)
    assert server.stats()["batches"] == len(PROMPTS)
    # left padding in a mixed-length batch must not change what a prompt generates
    assert [o.token_ids for o in batched] == [o.token_ids for o in single]
    assert all(o.stop_reason == "completed" and o.num_preempted == 0 for o in batched)


def test_requests_arriving_during_a_batch_wait_for_the_next_one(tiny, monkeypatch):
    server = make_server(tiny)
    generate = server._generate_chunk

    def slow_generate(chunk):
        time.sleep(0.3)
        return generate(chunk)

    monkeypatch.setattr(server, "_generate_chunk", slow_generate)

    async def go():
        first = asyncio.ensure_future(server.generate(PROMPTS[0], dict(GREEDY), "early"))
        await asyncio.sleep(0.15)  # the first batch is generating now
        late = [server.generate(p, dict(GREEDY), f"late{i}") for i, p in enumerate(PROMPTS[1:])]
        return await asyncio.gather(first, *late)

    outputs = asyncio.run(go())
    assert len(outputs) == len(PROMPTS)
    assert server.stats()["batches"] == 2  # [early], then all the late ones together


@pytest.mark.parametrize(
    "max_batch, params, expected_batches",
    [
        (2, [GREEDY] * 5, 3),  # 5 alike requests, at most 2 per generate call
        (64, [GREEDY, GREEDY, {"temperature": 1.0}, {"temperature": 1.0, "top_p": 0.5}], 3),  # one call per key
        (64, [GREEDY, {**GREEDY, "top_p": 0.3, "top_k": 5}], 1),  # greedy ignores top_p/top_k
    ],
)
def test_requests_are_grouped_by_sampling_key_and_cut_at_max_batch(tiny, max_batch, params, expected_batches):
    server = make_server(tiny, max_batch=max_batch)

    async def go():
        calls = [server.generate(PROMPTS[i % len(PROMPTS)], dict(p), f"r{i}") for i, p in enumerate(params)]
        return await asyncio.gather(*calls)

    asyncio.run(go())
    assert server.stats()["batches"] == expected_batches


@ENGINES
def test_each_request_keeps_its_own_length_limit(tiny, engine):
    server = make_server(tiny, response_length=6, prompt_length=4, engine=engine)
    limits = [1, 3, 9, None]  # None: verl's default, min(6, 4 + 6 - len(prompt)) = 3 for 7 tokens
    params = [{**GREEDY, "max_tokens": n} if n else GREEDY for n in limits]

    async def go():
        return await asyncio.gather(*[server.generate(PROMPTS[1], dict(p), f"r{i}") for i, p in enumerate(params)])

    outputs = asyncio.run(go())
    eos = server.engine.eos_ids
    for output, limit in zip(outputs, [1, 3, 9, 3], strict=True):
        assert len(output.token_ids) == limit or output.token_ids[-1] in eos
    # a shorter request is a prefix of a longer one (greedy): rows are cut, not regenerated
    assert outputs[1].token_ids == outputs[2].token_ids[:3]


@pytest.mark.parametrize(
    "prompt_len, max_tokens, expected",
    [
        (5, None, 8),  # default: the response length
        (14, None, 8),  # default still fits: 16 + 8 - 14 = 10 > 8
        (20, None, 4),  # an over-long prompt shrinks the default: 16 + 8 - 20
        (24, None, 1),  # nothing left: still one token, as vLLM does
        (5, 50, 50),  # an explicit max_tokens wins over the response length
        (90, 50, 10),  # ... but never beyond the context (100)
    ],
)
def test_request_limit(prompt_len, max_tokens, expected):
    assert request_limit(prompt_len, max_tokens, prompt_length=16, response_length=8, max_model_len=100) == expected


@ENGINES
def test_rows_are_cut_at_their_first_eos(tiny, tmp_path, engine):
    reference = run_concurrently(make_server(tiny, response_length=12, engine=engine), PROMPTS, GREEDY)
    # Declare as EOS a token that some prompt generates only after a few steps.
    late = [(i, k) for i, o in enumerate(reference) for k, t in enumerate(o.token_ids) if t not in o.token_ids[:k]]
    row, position = next((i, k) for i, k in late if k > 0)
    stop = reference[row].token_ids[position]
    with_eos = tmp_path / "model"
    shutil.copytree(tiny, with_eos)
    config_file = with_eos / "generation_config.json"
    config = json.loads(config_file.read_text())
    config["eos_token_id"] = [config["eos_token_id"], stop]
    config_file.write_text(json.dumps(config))

    cut = run_concurrently(make_server(with_eos, response_length=12, engine=engine), PROMPTS, GREEDY)
    for before, after in zip(reference, cut, strict=True):
        tokens = before.token_ids
        expected = tokens[: tokens.index(stop) + 1] if stop in tokens else tokens
        assert after.token_ids == expected
    assert cut[row].token_ids == reference[row].token_ids[: position + 1]  # cut mid-way, EOS kept
    assert any(stop not in o.token_ids for o in reference)  # and some rows ran on in the same batch


def test_an_error_in_generate_reaches_every_waiting_caller(tiny, monkeypatch):
    server = make_server(tiny)

    def broken(chunk):
        raise RuntimeError("boom")

    monkeypatch.setattr(server, "_generate_chunk", broken)

    async def go():
        calls = [server.generate(p, dict(GREEDY), f"r{i}") for i, p in enumerate(PROMPTS)]
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(asyncio.wait_for(go(), timeout=10))
    assert all(isinstance(r, RuntimeError) and "boom" in str(r) for r in results)
    assert server.stats()["failed_requests"] == len(PROMPTS)
    monkeypatch.undo()  # the server keeps serving after a failed batch
    assert len(run_concurrently(server, PROMPTS[:2], GREEDY)) == 2


@pytest.mark.parametrize(
    "params",
    [
        {**GREEDY, "repetition_penalty": 1.2},  # a penalty the server does not implement
        {**GREEDY, "frequency_penalty": 0.5},  # same
        {**GREEDY, "best_of": 2},  # an unknown parameter
        {**GREEDY, "logprobs": 5},  # top-5 log-probs: only the chosen token's is supported
        {"temperature": -1.0},  # negative temperature
        {"temperature": 1.0, "top_k": -2},  # top_k below -1
        {"temperature": 1.0, "top_p": 0.0},  # empty nucleus
    ],
)
def test_unsupported_sampling_parameters_raise(tiny, params):
    server = make_server(tiny)
    with pytest.raises(ValueError):
        run_concurrently(server, PROMPTS[:1], params)


def test_multimodal_inputs_raise(tiny):
    server = make_server(tiny)
    with pytest.raises(ValueError, match="image_data"):
        asyncio.run(server.generate([1, 2], dict(GREEDY), "r0", image_data=["img"]))


@ENGINES
@pytest.mark.parametrize("temperature", [0.0, 0.5])
def test_logprobs_are_the_chosen_tokens_under_the_processed_distribution(tiny, temperature, engine):
    server = make_server(tiny, engine=engine)
    params = {"temperature": temperature, "top_p": 1.0, "top_k": -1, "logprobs": True}
    torch.manual_seed(0)
    outputs = run_concurrently(server, PROMPTS[:3], params)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)  # the server's may be emptied
    for prompt, output in zip(PROMPTS[:3], outputs, strict=True):
        ids = torch.tensor([prompt + output.token_ids])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1]
        scale = temperature if temperature > 0 else 1.0  # greedy: raw log-probs
        expected = torch.log_softmax(logits / scale, dim=-1).gather(1, torch.tensor(output.token_ids)[:, None])
        assert len(output.log_probs) == len(output.token_ids)
        assert torch.allclose(torch.tensor(output.log_probs), expected.squeeze(1), atol=1e-4)


@pytest.mark.parametrize(
    "drop, accepted",
    [
        (["lm_head.weight"], True),  # tied to the embeddings: its alias is present
        (["model.norm.weight"], False),  # a real missing weight
    ],
)
def test_load_weights_is_strict_about_missing_keys(tiny, drop, accepted):
    server = make_server(tiny)
    state = {k: v for k, v in full_state(tiny).items() if k not in drop}
    if accepted:
        count = len(state)
        assert server.load_weights(state) == count
        assert not state  # emptied once loaded: the server owns (and frees) what it is sent
    else:
        with pytest.raises(ValueError, match=drop[0]):
            server.load_weights(state)


@ENGINES
def test_load_weights_rejects_unknown_keys_and_changes_outputs(tiny, engine):
    server = make_server(tiny, engine=engine)
    state = full_state(tiny)
    with pytest.raises(ValueError, match="lora_A"):
        server.load_weights({**state, "model.layers.0.self_attn.q_proj.lora_A.weight": torch.zeros(2, 2)})

    before = run_concurrently(server, PROMPTS, GREEDY)
    assert server.load_weights(dict(state)) == len(state)  # its own weights: nothing changes
    assert run_concurrently(server, PROMPTS, GREEDY) == before

    generator = torch.Generator().manual_seed(1)
    noisy = {k: v + 0.5 * torch.randn(v.shape, generator=generator) for k, v in state.items()}
    server.load_weights(noisy)
    assert [o.token_ids for o in run_concurrently(server, PROMPTS, GREEDY)] != [o.token_ids for o in before]


@ENGINES
def test_release_frees_the_weights_until_the_next_load(tiny, engine, tmp_path):
    server = make_server(tiny, engine=engine)
    state = full_state(tiny)
    before = run_concurrently(server, PROMPTS, GREEDY)
    asyncio.run(server.sleep())  # verl's sleep within a phase keeps the weights
    assert run_concurrently(server, PROMPTS, GREEDY) == before

    asyncio.run(server.release())
    asyncio.run(server.release())  # twice in a row: still released, shapes kept
    assert sum(p.numel() for p in server.model.parameters()) == 0
    if engine == "fast":
        assert server.engine.llama.layers == [] and server.engine.llama.lm_head is None
    with pytest.raises(RuntimeError, match="released"):
        run_concurrently(server, PROMPTS[:1], GREEDY)
    with pytest.raises(RuntimeError, match="released"):
        server.save_pretrained(str(tmp_path / "export"))

    assert server.load_weights(dict(state)) == len(state)
    assert run_concurrently(server, PROMPTS, GREEDY) == before  # the same weights, the same answers
    tied = server.model.config.tie_word_embeddings
    assert (server.model.lm_head.weight is server.model.model.embed_tokens.weight) == tied


def test_save_pretrained_round_trips_in_float32(tiny, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    server = make_server(tiny)
    server.set_global_steps(7)
    out = tmp_path / "export"
    server.save_pretrained(str(out))
    reloaded = AutoModelForCausalLM.from_pretrained(out)  # no dtype: the config must say float32
    assert reloaded.dtype == torch.float32
    sent = full_state(tiny)  # what the server loaded; the weights its engine packs are rebuilt exactly
    assert reloaded.state_dict().keys() == sent.keys()
    for name, tensor in sent.items():
        assert torch.equal(reloaded.state_dict()[name], tensor), name
    assert AutoTokenizer.from_pretrained(out).eos_token_id == server.tokenizer.eos_token_id
    assert not list(tmp_path.glob(".export.*"))  # no temporary directory left behind
    assert run_concurrently(server, PROMPTS[:1], GREEDY)[0].extra_fields == {"global_steps": 7}


@ENGINES
def test_one_copy_of_the_weights_while_loaded(tiny, engine, tmp_path):
    """The model's weights that the engine packs into its own copies are emptied, at start, after
    each load and after an export; the answers do not change."""
    server = make_server(tiny, engine=engine)
    packed = server.engine.packed_parameters()
    if engine == "fast" and server.engine.llama.kernels == "onednn":
        assert len(packed) == 7 * server.model.config.num_hidden_layers  # q k v o gate up down
    elif engine == "generate":
        assert packed == []
    assert all(p.numel() == 0 for p in packed)
    before = run_concurrently(server, PROMPTS, GREEDY)
    server.load_weights(full_state(tiny))
    assert all(p.numel() == 0 for p in packed)
    server.save_pretrained(str(tmp_path / "export"))
    assert all(p.numel() == 0 for p in packed)
    assert run_concurrently(server, PROMPTS, GREEDY) == before
    assert sum(p.numel() for p in server.model.parameters()) > 0  # embeddings, norms: read in place


def test_both_engines_answer_alike(tiny):
    """Greedy: the same tokens; sampled with log-probs: the same per-token log-probabilities."""
    fast, generate = make_server(tiny, engine="fast"), make_server(tiny, engine="generate")
    prompts = PROMPTS + PROMPTS[:2]  # repeated prompts share a prefill in the fast engine
    assert run_concurrently(fast, prompts, GREEDY) == run_concurrently(generate, prompts, GREEDY)
    sampled = {"temperature": 0.7, "top_p": 1.0, "top_k": -1, "logprobs": True}
    torch.manual_seed(0)
    outputs = run_concurrently(fast, prompts, sampled)
    for prompt, output in zip(prompts, outputs, strict=True):
        ids = torch.tensor([prompt + output.token_ids])
        with torch.no_grad():
            logits = generate.model(input_ids=ids).logits[0, len(prompt) - 1 : -1] / 0.7
        expected = torch.log_softmax(logits, -1).gather(1, torch.tensor(output.token_ids)[:, None]).squeeze(1)
        assert torch.allclose(torch.tensor(output.log_probs), expected, atol=1e-4)


def test_an_unknown_engine_is_refused_by_name(tiny):
    with pytest.raises(ValueError, match="'vllm-cpu'.*resources.cpu_engine"):
        make_server(tiny, engine="vllm-cpu")


def test_server_name_carries_the_role_prefix():
    assert hf_requests.server_name("solver_", 1) == "solver_hf_rollout_server_1"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"peft_config": {"r": 8}}, "lora.merge"),  # unmerged LoRA adapters cannot be loaded
        ({"wire_format": "delta_flush"}, "named_tensors"),  # delta sync is a GPU-engine protocol
    ],
)
def test_adapter_refuses_weight_formats_it_cannot_load(tiny, kwargs, match):
    from verl.workers.config import HFModelConfig, RolloutConfig

    adapter = hf_replica.HFServerAdapter(RolloutConfig(name="hf"), HFModelConfig(path=str(tiny)), None)
    with pytest.raises(ValueError, match=match):
        asyncio.run(adapter.update_weights(iter([]), **kwargs))
