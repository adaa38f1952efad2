"""Drawing one token per row from logits, as transformers' warpers define the distribution.

Top-k works on the k best tokens and top-p on the smallest candidate set that provably holds
the nucleus, so no step sorts the whole vocabulary unless a nucleus is wider than
`NUCLEUS_CANDIDATES`; a token is drawn by inverting the cumulative distribution (one exp,
one cumsum, a binary search) instead of `torch.multinomial`, the slower of the two on
the decode shapes of `make bench-generation`.
"""

from __future__ import annotations

import torch

from coevolve.backend.generation.requests import SamplingKey

# When top-p has no top-k to work in, the nucleus is first looked for among this many of the
# most likely tokens; when some row's nucleus is larger, the batch sorts the whole vocabulary.
NUCLEUS_CANDIDATES = 256


def sample(scores: torch.Tensor, key: SamplingKey, want_logprobs: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Draw one token per row as `key` says; and log p(token) under the processed distribution.

    `scores` are the logits divided by the temperature (greedy: the raw logits).
    """
    if key.greedy:
        chosen = scores.argmax(-1)
        if not want_logprobs:
            return chosen, None
        return chosen, _pick(scores, chosen[:, None]) - torch.logsumexp(scores, -1)
    candidates, ids = _candidates(scores, key)
    if candidates is None:  # the whole vocabulary
        return _draw(scores, want_logprobs)
    pick, logprob = _draw(candidates, want_logprobs)
    return ids.gather(1, pick[:, None]).squeeze(1), logprob


def processed_logprobs(scores: torch.Tensor, key: SamplingKey) -> torch.Tensor:
    """log p of every token under the distribution `sample` draws from (-inf outside the kept
    set); greedy: the softmax of the raw logits, whose argmax is drawn."""
    if key.greedy:
        return torch.log_softmax(scores, -1)
    candidates, ids = _candidates(scores, key)
    if candidates is None:
        return torch.log_softmax(scores, -1)
    out = torch.full_like(scores, float("-inf"))
    return out.scatter_(1, ids, torch.log_softmax(candidates, -1))


def _draw(scores: torch.Tensor, want_logprobs: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Index drawn per row with probability softmax(scores), by inverting the cumulative sum.

    Tokens of zero probability (-inf) are never drawn.
    """
    top = scores.max(-1, keepdim=True).values
    cdf = torch.exp(scores - top).cumsum_(-1)
    total = cdf[:, -1:]
    u = torch.rand(total.shape, dtype=total.dtype) * total
    chosen = torch.searchsorted(cdf, u, right=True).clamp_(max=scores.shape[-1] - 1).squeeze(1)
    if not want_logprobs:
        return chosen, None
    return chosen, _pick(scores, chosen[:, None]) - top.squeeze(1) - torch.log(total.squeeze(1))


def _pick(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return values.gather(1, index).squeeze(1)


def _candidates(scores: torch.Tensor, key: SamplingKey) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(candidate scores, -inf outside the kept set; their token ids), or (None, None) for all.

    Candidates are sorted by descending score. Top-k keeps the k highest, and every token tied
    with the k-th (as transformers' TopKLogitsWarper does); top-p then keeps the smallest
    prefix whose probability reaches top_p (at least one token), as its TopPLogitsWarper does.
    """
    vocab = scores.shape[-1]
    if 0 < key.top_k < vocab:
        values, ids = _top_k(scores, key.top_k)
        return (_nucleus(values, key.top_p) if key.top_p < 1.0 else values), ids
    if key.top_p >= 1.0:
        return None, None
    width = min(NUCLEUS_CANDIDATES, vocab)
    values, ids = scores.topk(width, dim=-1)
    total = torch.logsumexp(scores, -1, keepdim=True)
    covered = torch.exp(values - total).sum(-1)
    if width == vocab or bool((covered >= key.top_p).all()):
        return _nucleus(values, key.top_p, total), ids
    values, ids = scores.sort(-1, descending=True)  # a nucleus wider than the candidates
    return _nucleus(values, key.top_p), ids


def _top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k highest scores per row (k < vocabulary), descending, widened to every score tied
    with the k-th."""
    values, ids = scores.topk(k + 1, dim=-1)
    if not bool((values[:, k] == values[:, k - 1]).any()):
        return values[:, :k], ids[:, :k]
    kth = values[:, k - 1 : k]
    width = int((scores >= kth).sum(-1).max())  # rare: count the ties in full
    values, ids = scores.topk(width, dim=-1)
    return values.masked_fill(values < kth, float("-inf")), ids


def _nucleus(values: torch.Tensor, top_p: float, total: torch.Tensor | None = None) -> torch.Tensor:
    """Descending `values` with -inf beyond the smallest prefix whose probability reaches top_p.

    `total` is the log-normaliser of the full distribution when `values` are only its top part.
    A token is dropped when the tokens ranked above it already hold top_p of the mass: the
    same set transformers' TopPLogitsWarper keeps (it removes the low tail of mass <= 1-top_p).
    """
    if total is None:
        total = torch.logsumexp(values, -1, keepdim=True)
    probs = torch.exp(values - total)
    before = probs.cumsum(-1) - probs  # mass of the tokens ranked above each one
    drop = before >= top_p
    drop[:, 0] = False
    return values.masked_fill(drop, float("-inf"))
