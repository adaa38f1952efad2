"""How to sample: the one sampling type every generation path of coevolve takes, and the chat
messages every path sends (the recipe's system turn, `model.system_turn`, then the user turn).

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


SYSTEM_TURNS = ("default", "none")  # or any other text: the system turn's own words


def chat_messages(user_message: str, system_turn: str) -> list[dict[str, str]]:
    """The chat of one prompt under `model.system_turn`.

    "default" sends the user turn alone, so the chat template adds the model's own system turn
    if it has one (SmolLM2's: "You are a helpful AI assistant named SmolLM, trained by Hugging
    Face", 16 tokens on every prompt); "none" sends an empty system turn (a template that always
    writes one keeps only its markers); any other text is the system turn.
    """
    user = {"role": "user", "content": user_message}
    if system_turn == "default":
        return [user]
    return [{"role": "system", "content": "" if system_turn == "none" else system_turn}, user]
