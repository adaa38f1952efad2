"""How to sample: the one sampling type every generation path of coevolve takes.

The loop's votes and evaluations, the probe, `coevolve eval` and the tools build it from the
recipe here; the backend turns it into what its engine wants (the rollout servers' request
dicts, `HFGenerator`'s arguments).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SamplingParams:
    """n completions per prompt; temperature 0 means greedy."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = no top-k cut
    max_new_tokens: int = 256

    def request(self) -> dict[str, float | int]:
        """The per-request sampling settings of a rollout server (vLLM's names)."""
        return {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k or -1,
                "max_tokens": self.max_new_tokens}


def vote_params(recipe, n: int, temperature: float | None = None) -> SamplingParams:
    """The recipe's vote sampling (`vote.*`) for n answers, at another temperature if given."""
    v = recipe.vote
    return SamplingParams(n=n, temperature=v.temperature if temperature is None else temperature,
                          top_p=v.top_p, top_k=v.top_k, max_new_tokens=v.max_new_tokens)


def greedy_params(max_new_tokens: int) -> SamplingParams:
    return SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens)
