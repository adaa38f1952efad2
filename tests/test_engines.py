"""The two generation engines behind one signature give the same answers on the tiny model.

"fast" (coevolve's decode loop) and "generate" (transformers.generate) must be
interchangeable: the same greedy tokens, the same distribution at every step under every
sampling setting, draws that follow it, and recorded log-probs that are its values.
"""

import pytest

torch = pytest.importorskip("torch")

from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from coevolve.backend.generation.engine import load_engine  # noqa: E402
from coevolve.backend.generation.requests import ENGINES, SamplingKey  # noqa: E402
from helpers.tiny_model import build_tiny_model  # noqa: E402

# mixed lengths, a repeated prompt and a shared prefix: every prefill path of the fast engine
PROMPTS = [[5, 6, 7], [40, 41, 42, 43, 44, 45, 46], [7], [5, 6, 7], [5, 6, 9, 9, 100]]
KEYS = pytest.mark.parametrize("key", [
    SamplingKey(temperature=1.0),  # the model's own distribution
    SamplingKey(temperature=0.6),  # sharper: temperature alone
    SamplingKey(temperature=1.3, top_k=5),  # flatter, cut to the five best
    SamplingKey(temperature=0.8, top_p=0.9),  # a nucleus
    SamplingKey(temperature=1.0, top_k=20, top_p=0.8, min_tokens=2),  # both cuts, EOS masked at first
], ids=["t1", "t0.6", "topk", "topp", "topk-topp-min"])


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    path = build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", layers=3)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    return {name: load_engine(name, model, tokenizer, batch_hint=8) for name in ENGINES}


def test_both_engines_give_the_same_greedy_tokens(engines):
    greedy = SamplingKey(temperature=0.0, logprobs=True)
    limits = [12, 5, 12, 9, 1]
    fast, generate = (engines[n].generate(PROMPTS, limits=limits, key=greedy) for n in ("fast", "generate"))
    assert [r.tokens for r in fast] == [r.tokens for r in generate]
    assert all(len(r.tokens) <= limit for r, limit in zip(fast, limits, strict=True))
    for ours, theirs in zip(fast, generate, strict=True):
        assert torch.allclose(torch.tensor(ours.logprobs), torch.tensor(theirs.logprobs), atol=1e-4)


@KEYS
def test_both_engines_sample_from_the_same_distribution_at_every_step(engines, key):
    """Full next-token distributions along sampled rows: same support, KL ~ 0 at every step."""
    torch.manual_seed(0)
    rows = engines["generate"].generate(PROMPTS, limits=[6] * len(PROMPTS), key=key)
    # only rows that ran their whole limit (no EOS): the fast engine feeds equal lengths
    kept = [(p, r.tokens) for p, r in zip(PROMPTS, rows, strict=True) if len(r.tokens) == 6]
    assert kept
    prompts, continuations = [p for p, _ in kept], [t for _, t in kept]
    fast = engines["fast"].step_logprobs(prompts, continuations, key=key)
    generate = engines["generate"].step_logprobs(prompts, continuations, key=key)
    for ours, theirs in zip(fast, generate, strict=True):
        assert torch.equal(torch.isinf(ours), torch.isinf(theirs))  # the same kept tokens
        support = ~torch.isinf(theirs)
        kl = (theirs.exp() * (theirs - ours)).masked_fill(~support, 0).sum(-1)
        assert kl.abs().max().item() < 1e-6  # float32 round-off; a wrong cut or temperature gives > 1e-3


@pytest.mark.parametrize("name", ENGINES)
@KEYS
def test_recorded_logprobs_are_the_steps_distribution(engines, name, key):
    """What `generate` records for each drawn token is that token's value in `step_logprobs`,
    and every drawn token lies inside the kept set."""
    engine = engines[name]
    torch.manual_seed(1)
    rows = engine.generate(PROMPTS, limits=[5] * len(PROMPTS), key=SamplingKey(**{**key.__dict__, "logprobs": True}))
    for prompt, row in zip(PROMPTS, rows, strict=True):
        steps = engine.step_logprobs([prompt], [row.tokens[:-1]], key=key)[0]
        expected = steps.gather(1, torch.tensor(row.tokens)[:, None]).squeeze(1)
        assert torch.isfinite(expected).all()
        assert torch.allclose(torch.tensor(row.logprobs, dtype=torch.float64), expected, atol=1e-4)


def test_both_engines_draw_first_tokens_with_the_same_frequencies(engines):
    """Many one-token draws of one prompt: a two-sample chi-square test of the counts."""
    key = SamplingKey(temperature=1.5, top_k=6)
    prompts = [PROMPTS[1]] * 3000
    counts = {}
    for name, engine in engines.items():
        torch.manual_seed(2)
        drawn = torch.tensor([r.tokens[0] for r in engine.generate(prompts, limits=[1] * len(prompts), key=key)])
        counts[name] = torch.bincount(drawn, minlength=engine_vocab(engines)).double()
    a, b = counts["fast"], counts["generate"]
    support = (a + b) > 0
    assert int(support.sum()) <= 6  # only the top-k ever drawn
    expected = (a + b)[support] / 2
    chi2 = (((a[support] - expected) ** 2 + (b[support] - expected) ** 2) / expected).sum().item()
    assert chi2 < 25.7  # at most 5 degrees of freedom, p = 0.0001


def engine_vocab(engines) -> int:
    return engines["generate"].model.config.vocab_size


@pytest.mark.parametrize("name, device, match", [
    ("fast", "meta", "decodes on the CPU"),  # a model off the CPU: the fast engine refuses it by name
    ("vllm-cpu", "cpu", "'vllm-cpu'.*resources.cpu_engine"),  # no such engine: the recipe key is named
])
def test_load_engine_refuses_what_it_cannot_run(engines, name, device, match):
    model = engines["generate"].model
    if device != "cpu":
        model = AutoModelForCausalLM.from_config(model.config).to(device)
    with pytest.raises(ValueError, match=match):
        load_engine(name, model, _Tokenizer(), batch_hint=8)


class _Tokenizer:
    """What load_engine reads of a tokenizer."""

    eos_token_id = 1
    pad_token_id = 0


@pytest.mark.parametrize("rows, pad_id, ids, valid", [
    ([[5, 6], [7]], 0, [[5, 6], [0, 7]], [[True, True], [False, True]]),  # the shorter row is padded on the left
    ([[1], [2, 3, 4]], 9, [[9, 9, 1], [2, 3, 4]], [[False, False, True], [True, True, True]]),  # the given pad id
    ([[3, 3]], 0, [[3, 3]], [[True, True]]),  # one row: nothing to pad
])
def test_left_pad(rows, pad_id, ids, valid):
    from coevolve.backend.generation.requests import left_pad

    got_ids, got_valid = left_pad(rows, pad_id)
    assert got_ids.tolist() == ids and got_valid.tolist() == valid and got_valid.dtype == torch.bool
