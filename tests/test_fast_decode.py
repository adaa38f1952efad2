"""coevolve's CPU decode loop (backend/generation/fast/) against the model it runs.

The fast engine must draw every token from the distribution the model and the sampling settings
define, and record the log-probability the actor recomputes (the actor reuses rollout
log-probs as pi_old on the CPU): checked here by teacher forcing with the model's own forward
pass, by greedy decoding against transformers.generate, and by comparing the sampler's
candidate sets with transformers' top-k/top-p warpers.
"""

import pytest

torch = pytest.importorskip("torch")

from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    Qwen2Config,
    Qwen2ForCausalLM,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from coevolve.backend.generation.fast import decode, sampling  # noqa: E402
from coevolve.backend.generation.fast.decode import FastEngine  # noqa: E402
from coevolve.backend.generation.fast.model import UnsupportedModel  # noqa: E402
from coevolve.backend.generation.fast.sampling import sample  # noqa: E402
from coevolve.backend.generation.requests import SamplingKey  # noqa: E402
from helpers.tiny_model import build_tiny_model  # noqa: E402

# mixed lengths, and a prompt repeated (prefilled once, then copied to each of its rows)
PROMPTS = [[5, 6, 7], [40, 41, 42, 43, 44, 45, 46], [7], [5, 6, 7], [100, 9, 200, 31, 12], [5, 6, 7]]
# a shared prefix (a chat template's system turn): run once, its cache copied to every row
SHARED = [[11, 12, 13, 14, 5, 6, 7], [11, 12, 13, 14, 40], [11, 12, 13, 14, 5, 6, 7], [11, 12, 13, 14, 9, 9, 9, 9, 9],
          [11, 12, 13, 15]]
PROMPT_SETS = pytest.mark.parametrize("prompts", [PROMPTS, SHARED], ids=["distinct", "shared-prefix"])
NO_EOS = frozenset({-1})


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    path = build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", layers=3)
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def qwen2():
    """Qwen2's decoder layer is Llama's with q/k/v biases (and no tied embeddings here)."""
    config = Qwen2Config(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=False)
    torch.manual_seed(3)
    model = Qwen2ForCausalLM(config).eval()
    with torch.no_grad():  # random biases, so that the bias path matters
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_(0, 0.1)
    return model


def teacher_forced_logprobs(model, prompt, tokens, temperature):
    """log p(token) of each generated token under the model's forward pass over the whole row."""
    ids = torch.tensor([prompt + tokens])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1]
    scaled = logits / temperature if temperature > 0 else logits
    return torch.log_softmax(scaled, -1), torch.tensor(tokens)


@PROMPT_SETS
@pytest.mark.parametrize("which", ["llama", "qwen2"])
@pytest.mark.parametrize("temperature", [0.5, 1.0])
def test_rollout_logprobs_agree_with_the_actors_forward_pass(which, temperature, prompts, request):
    """The KL between the rollout's and the actor's distribution on a sampled batch is ~0."""
    model = request.getfixturevalue(which)
    engine = FastEngine(model, eos_ids=NO_EOS)
    torch.manual_seed(0)
    limits = [12, 9, 12, 4, 10, 12][: len(prompts)]
    out = engine.generate(prompts, limits=limits, key=SamplingKey(temperature=temperature, logprobs=True))
    log_ratios = []
    for prompt, row, limit in zip(prompts, out, limits, strict=True):
        assert len(row.tokens) == limit and len(row.logprobs) == limit
        actor, tokens = teacher_forced_logprobs(model, prompt, row.tokens, temperature)
        rollout = torch.tensor(row.logprobs)
        log_ratios.append(actor.gather(1, tokens[:, None]).squeeze(1) - rollout)
    ratio = torch.cat(log_ratios)
    k3_kl = (ratio.exp() - 1 - ratio).mean().item()  # the estimator verl's rollout correction reports
    assert ratio.abs().max().item() < 1e-4
    assert 0 <= k3_kl < 1e-8


@PROMPT_SETS
@pytest.mark.parametrize("kernels", ["onednn", "torch"])
@pytest.mark.parametrize("which", ["llama", "qwen2"])
def test_every_step_distribution_is_the_models(which, prompts, kernels, request):
    """Teacher forcing the engine's own cache path: full next-token distributions, KL per step."""
    if kernels == "onednn" and not torch.backends.mkldnn.is_available():
        pytest.skip("this torch build has no oneDNN")
    model = request.getfixturevalue(which)
    engine = FastEngine(model, eos_ids=NO_EOS, kernels=kernels)
    assert engine.llama.kernels == kernels
    key = SamplingKey(temperature=1.0)
    torch.manual_seed(1)
    out = engine.generate(prompts, limits=[10] * len(prompts), key=key)
    # the engine's distribution at each step, from its prefill and cached decode steps
    all_steps = engine.step_logprobs(prompts, [row.tokens[:-1] for row in out], key=key)
    for prompt, row, ours in zip(prompts, out, all_steps, strict=True):
        reference, _ = teacher_forced_logprobs(model, prompt, row.tokens, 1.0)
        reference = reference.double()
        kl = (reference.exp() * (reference - ours)).sum(-1)
        assert kl.abs().max().item() < 1e-6  # float32 round-off; a wrong position or mask gives > 1e-2


def test_a_shared_prefix_is_run_once(llama, monkeypatch):
    engine = FastEngine(llama, eos_ids=NO_EOS)
    blocks = []
    prefill = engine.llama.prefill
    monkeypatch.setattr(engine.llama, "prefill", lambda ids, **kw: blocks.append(tuple(ids.shape)) or prefill(ids, **kw))
    engine.generate(SHARED, limits=[2] * len(SHARED), key=SamplingKey(temperature=0.0))
    # the 3 tokens all share, once; then the 4 distinct rests (the repeated prompt once), up to 6 tokens
    assert blocks == [(1, 3), (4, 6)]


@PROMPT_SETS
@pytest.mark.parametrize("which", ["llama", "qwen2"])
def test_greedy_matches_transformers_generate(which, prompts, request):
    model = request.getfixturevalue(which)
    out = FastEngine(model, eos_ids=NO_EOS).generate(prompts, limits=[8] * len(prompts), key=SamplingKey(temperature=0.0))
    for prompt, row in zip(prompts, out, strict=True):
        with torch.no_grad():
            expected = model.generate(torch.tensor([prompt]), max_new_tokens=8, min_new_tokens=8, do_sample=False,
                                      pad_token_id=0, eos_token_id=None)[0, len(prompt):].tolist()
        assert row.tokens == expected


def test_rows_stop_at_their_limit_or_eos_and_leave_the_batch_without_changing_others(qwen2, monkeypatch):
    engine = FastEngine(qwen2, eos_ids=NO_EOS)  # its greedy rows vary (the tiny llama's repeat one token)
    greedy = SamplingKey(temperature=0.0)
    alone = [engine.generate([p], limits=[10], key=greedy)[0].tokens for p in PROMPTS]
    limits = [10, 10, 3, 10, 1, 10]
    # an end-of-sequence token that some row reaches only after a few tokens and another never
    eos = next(tokens[k] for tokens in alone for k in range(1, 10) if tokens[k] not in tokens[:k]
               and any(tokens[k] not in other[:limit] for other, limit in zip(alone, limits, strict=True)))
    monkeypatch.setattr(decode, "COMPACT_SHARE", 0.01)  # drop finished rows at once
    batched = FastEngine(qwen2, eos_ids=frozenset({eos})).generate(PROMPTS, limits=limits, key=greedy)
    for row, reference, limit in zip(batched, alone, limits, strict=True):
        expected = reference[:limit]
        if eos in expected:
            expected = expected[: expected.index(eos) + 1]
        assert row.tokens == expected
    assert any(row.tokens[-1] == eos and 1 < len(row.tokens) < limit for row, limit in zip(batched, limits, strict=True))
    assert any(eos not in row.tokens and len(row.tokens) == limit for row, limit in zip(batched, limits, strict=True))


def test_min_tokens_masks_end_of_sequence(llama):
    first = FastEngine(llama, eos_ids=NO_EOS).generate([PROMPTS[0]], limits=[1], key=SamplingKey(temperature=0.0))
    engine = FastEngine(llama, eos_ids=frozenset({first[0].tokens[0]}))
    masked = engine.generate([PROMPTS[0]], limits=[5], key=SamplingKey(temperature=0.0, min_tokens=3))
    first = first[0].tokens[0]
    assert masked[0].tokens[0] != first and len(masked[0].tokens) >= 3


def test_refresh_takes_new_weights(llama):
    model = AutoModelForCausalLM.from_config(llama.config).eval()
    model.load_state_dict(llama.state_dict())
    engine = FastEngine(model, eos_ids=NO_EOS)
    greedy = SamplingKey(temperature=0.0)
    before = [r.tokens for r in engine.generate(PROMPTS, limits=[6] * len(PROMPTS), key=greedy)]
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.add_(0.5 * torch.randn(tensor.shape, generator=generator))
    engine.refresh()
    after = [r.tokens for r in engine.generate(PROMPTS, limits=[6] * len(PROMPTS), key=greedy)]
    assert after != before
    for prompt, tokens in zip(PROMPTS, after, strict=True):
        with torch.no_grad():
            expected = model.generate(torch.tensor([prompt]), max_new_tokens=6, min_new_tokens=6, do_sample=False,
                                      pad_token_id=0, eos_token_id=None)[0, len(prompt):].tolist()
        assert tokens == expected


def hf_processed(logits, key):
    """transformers' distribution after temperature, top-k and top-p (vLLM's order)."""
    scores = logits / key.temperature
    if key.top_k > 0:
        scores = TopKLogitsWarper(key.top_k)(None, scores)
    if key.top_p < 1.0:
        scores = TopPLogitsWarper(key.top_p)(None, scores)
    return torch.softmax(scores, -1)


@pytest.mark.parametrize("key", [
    SamplingKey(temperature=0.7, top_k=40),
    SamplingKey(temperature=0.7, top_p=0.95),  # the nucleus inside the top candidates
    SamplingKey(temperature=3.0, top_p=0.99),  # a flat distribution: nucleus beyond them
    SamplingKey(temperature=1.0, top_k=40, top_p=0.9),
    SamplingKey(temperature=0.5),
])
def test_sampler_candidates_are_transformers_warpers(key, monkeypatch):
    monkeypatch.setattr(sampling, "NUCLEUS_CANDIDATES", 64)
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(8, 1000, generator=generator)
    logits[0, :50] = 7.0  # ties at the top-k boundary
    expected = hf_processed(logits, key)
    scores = logits / key.temperature
    ours = sampling.processed_logprobs(scores, key).exp()
    # row 0 ties at the top-k boundary; with a nucleus cut among equal scores, which of them
    # stay is the sort's arbitrary order, in transformers as here
    rows = slice(1, None) if key.top_k and key.top_p < 1 else slice(None)
    assert torch.allclose(ours[rows], expected[rows], atol=1e-6)
    # and the draws: every token drawn has positive probability, log-probs are its processed ones
    torch.manual_seed(0)
    chosen, logprob = sample(scores, key, want_logprobs=True)
    assert torch.all(expected.gather(1, chosen[:, None]) > 0)
    assert torch.allclose(logprob.exp(), expected.gather(1, chosen[:, None]).squeeze(1), atol=1e-5)


@pytest.mark.parametrize("key, kept", [
    (SamplingKey(temperature=0.8, top_k=4), 4),
    (SamplingKey(temperature=1.3), 6),  # the whole vocabulary: the inverse-CDF draw
])
def test_draws_follow_the_processed_distribution(key, kept):
    """Frequencies of many draws from one row match its probabilities (chi-square bound)."""
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, -3.0]]).repeat(20000, 1)
    logits[:, 5] = float("-inf") if kept == 6 else logits[:, 5]  # a token of probability 0
    torch.manual_seed(0)
    chosen, logprob = sample(logits / key.temperature, key, want_logprobs=True)
    expected = hf_processed(logits[:1], key)[0].double()
    counts = torch.bincount(chosen, minlength=6).double()
    support = expected > 0
    assert counts[~support].sum() == 0  # outside the top-k, or of probability 0: never
    expect = 20000 * expected[support]
    chi2 = ((counts[support] - expect) ** 2 / expect).sum().item()
    assert chi2 < 20.5  # at most 4 degrees of freedom, p = 0.0004
    assert torch.allclose(logprob.double().exp(), expected[chosen], atol=1e-6)


def test_unsupported_architectures_are_refused_by_name():
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50))
    with pytest.raises(UnsupportedModel, match="'gpt2'.*engine 'generate'"):
        FastEngine(model, eos_ids=NO_EOS)


def test_bad_calls_raise(llama):
    engine = FastEngine(llama, eos_ids=NO_EOS)
    with pytest.raises(ValueError, match="2 prompts but 1 limits"):
        engine.generate([[1], [2]], limits=[3], key=SamplingKey())
    with pytest.raises(ValueError, match="limit"):
        engine.generate([[1]], limits=[0], key=SamplingKey())
    assert engine.generate([], limits=[], key=SamplingKey()) == []
