"""The tiny test model and the batched sampler (torch, no verl)."""

import pytest

torch = pytest.importorskip("torch")

from coevolve.backend.generation.generator import HFGenerator  # noqa: E402
from coevolve.run.sampling import SamplingParams  # noqa: E402
from helpers.tiny_model import build_tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def test_tiny_model_reloads_as_a_plain_hf_model(tiny):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny)
    assert sum(p.numel() for p in model.parameters()) < 200_000


@pytest.mark.parametrize(
    "params, seeds_equal",
    [
        (SamplingParams(n=3, temperature=1.0, max_new_tokens=8), True),  # same seed, same samples
        (SamplingParams(n=2, temperature=0.0, max_new_tokens=8), True),  # greedy
    ],
)
def test_sampler_shapes_order_and_seed(tiny, params, seeds_equal):
    sampler = HFGenerator(str(tiny), batch_size=4)
    messages = ["What is 1 + 2?", "What is 3 * 4 + 11?", "Hi"]
    first = sampler.generate(messages, params, seed=5)
    second = sampler.generate(messages, params, seed=5)
    assert [len(c) for c in first] == [params.n] * len(messages)
    assert (first == second) is seeds_equal
    stats = sampler.last_stats
    assert stats.sequences == params.n * len(messages)
    assert 0 < stats.generated_tokens <= stats.sequences * params.max_new_tokens


def test_sampler_batches_do_not_change_greedy_outputs(tiny):
    # left padding in a mixed-length batch must not change what a prompt generates
    messages = ["What is 1 + 2?", "What is 3 * 4 + 11 * 7 + 2?"]
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=6)
    batched = HFGenerator(str(tiny), batch_size=8).generate(messages, greedy)
    single = HFGenerator(str(tiny), batch_size=1).generate(messages, greedy)
    assert batched == single
