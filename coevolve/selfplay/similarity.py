"""Pairwise sentence BLEU for a whole batch of questions, vectorised and exact.

R-Zero's repetition penalty needs 1 - BLEU between every pair of a challenger batch; NLTK's
`sentence_bleu` pair by pair is hours of Python calls for 8 000 questions. Here the clipped
n-gram matches of every pair come from Gram matrices of 0/1 "count >= k" columns: frequent
columns in a dense float32 BLAS product (integer-exact below 2**24), rare ones in a sparse
product; the rest of BLEU is elementwise on blocks of rows, so memory stays bounded. The
numbers equal `sentence_bleu([ref.split()], hyp.split(), smoothing_function=
SmoothingFunction().method1)` with uniform 4-gram weights, edge cases included.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

MAX_ORDER = 4  # NLTK's default weights (0.25, 0.25, 0.25, 0.25)
WEIGHT = 1.0 / MAX_ORDER
EPSILON = 0.1  # SmoothingFunction().method1's default epsilon
_BLOCK_CELLS = 1 << 22  # cells of one (rows x columns) block: ~32 MiB per float64 temporary


@dataclass(frozen=True)
class _OrderGram:
    """Clipped n-gram matches of one order, split by how common the n-gram is.

    matches(i, j) = dense[i] . dense[j] + rare[i] . rare[j]
    """

    dense: np.ndarray  # (n_texts, n_frequent_columns) float32, 0/1
    rare: sp.csr_matrix  # (n_texts, n_rare_columns) int32, 0/1


@dataclass(frozen=True)
class NgramIndex:
    """Per-text lengths and per-order match structures for a batch of whitespace-tokenised texts."""

    lengths: np.ndarray  # (n_texts,) int64, number of tokens
    orders: tuple[_OrderGram, ...]  # orders 1..MAX_ORDER

    @property
    def size(self) -> int:
        return len(self.lengths)


def _tokenise(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whitespace tokens as integer ids: (flat token ids, text index per token, lengths)."""
    vocab: dict[str, int] = {}
    token_lists = [text.split() for text in texts]
    flat = [vocab.setdefault(tok, len(vocab)) for toks in token_lists for tok in toks]
    lengths = np.fromiter((len(toks) for toks in token_lists), dtype=np.int64, count=len(texts))
    text_of = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
    return np.asarray(flat, dtype=np.int64), text_of, lengths


def _next_order_ids(
    prev: np.ndarray, tokens: np.ndarray, text_of: np.ndarray, n: int
) -> np.ndarray:
    """Id of the n-gram starting at each flat position (-1 if none), from the (n-1)-gram ids."""
    ids = np.full(len(tokens), -1, dtype=np.int64)
    start = np.flatnonzero(prev[: max(0, len(tokens) - n + 1)] >= 0)
    start = start[text_of[start + n - 1] == text_of[start]]  # the n-gram stays inside its text
    if len(start) == 0:
        return ids
    vocab_size = int(tokens.max()) + 1
    keys = prev[start] * vocab_size + tokens[start + n - 1]
    _, ids[start] = np.unique(keys, return_inverse=True)
    return ids


def _level_columns(ids: np.ndarray, text_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of the ones of [I_1 | I_2 | ...]: one column per (n-gram, level k)."""
    valid = ids >= 0
    if not valid.any():
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    n_grams = int(ids.max()) + 1
    pairs, counts = np.unique(text_of[valid] * n_grams + ids[valid], return_counts=True)
    rows = np.repeat(pairs // n_grams, counts)
    grams = np.repeat(pairs % n_grams, counts)
    # level k - 1 = rank of each copy within its (text, n-gram) run
    run_start = np.repeat(np.cumsum(counts) - counts, counts)
    levels = np.arange(len(rows), dtype=np.int64) - run_start
    _, cols = np.unique(levels * n_grams + grams, return_inverse=True)
    return rows, cols.astype(np.int64)


def _order_gram(rows: np.ndarray, cols: np.ndarray, n_texts: int, dense_min_df: int) -> _OrderGram:
    """Split the 0/1 level columns into dense (df >= dense_min_df) and sparse matrices."""
    n_cols = int(cols.max()) + 1 if len(cols) else 0
    df = np.bincount(cols, minlength=n_cols)
    is_dense = df >= dense_min_df
    col_map = np.empty(n_cols, dtype=np.int64)
    col_map[is_dense] = np.arange(int(is_dense.sum()))
    col_map[~is_dense] = np.arange(int((~is_dense).sum()))
    on_dense = is_dense[cols]
    dense = np.zeros((n_texts, int(is_dense.sum())), dtype=np.float32)
    dense[rows[on_dense], col_map[cols[on_dense]]] = 1.0
    rare = sp.csr_matrix(
        (
            np.ones(int((~on_dense).sum()), dtype=np.int32),
            (rows[~on_dense], col_map[cols[~on_dense]]),
        ),
        shape=(n_texts, int((~is_dense).sum())),
    )
    return _OrderGram(dense=dense, rare=rare)


def default_dense_min_df(n_texts: int) -> int:
    """Document frequency from which a column is cheaper in BLAS than in the sparse product.

    A dense column costs ~n^2 flops in BLAS, a sparse one ~df^2 slower scalar steps. On 8 000
    templated questions (2 cores) the total time is flat for thresholds between n/64 and n/16.
    """
    return max(8, n_texts // 32)


def build_index(texts: Sequence[str], dense_min_df: int | None = None) -> NgramIndex:
    """Tokenise on whitespace and build the match structures of orders 1..MAX_ORDER."""
    tokens, text_of, lengths = _tokenise(texts)
    min_df = default_dense_min_df(len(texts)) if dense_min_df is None else dense_min_df
    orders = []
    ids = tokens.copy()
    for n in range(1, MAX_ORDER + 1):
        if n > 1:
            ids = _next_order_ids(ids, tokens, text_of, n)
        rows, cols = _level_columns(ids, text_of)
        orders.append(_order_gram(rows, cols, len(texts), min_df))
    return NgramIndex(lengths=lengths, orders=tuple(orders))


def _matches(order: _OrderGram, rows: slice, cols: slice) -> np.ndarray:
    """(rows, cols) float32 block of clipped n-gram matches; integer-valued and exact."""
    matches = order.dense[rows] @ order.dense[cols].T
    # per block, so that memory stays bounded even when the rare columns are not that rare
    rare = (order.rare[rows] @ order.rare[cols].T).tocoo()
    matches[rare.row, rare.col] += rare.data
    return matches


def _hyp_ngrams_product(lengths: np.ndarray) -> np.ndarray:
    """prod over orders n of max(1, length - n + 1): NLTK's precision denominators, multiplied."""
    product = np.ones(lengths.shape, dtype=np.float64)
    for n in range(1, MAX_ORDER + 1):
        product *= np.maximum(1, lengths - n + 1)
    return product


def bleu_block(index: NgramIndex, rows: slice, cols: slice) -> np.ndarray:
    """sentence BLEU (method1) with hypotheses index[rows] and references index[cols], float64.

    NLTK: bp * exp(sum_n w log p_n), p_n = m_n / d_n, or 0.1 / d_n when m_n = 0. Matches are
    integers, so max(m_n, 0.1) is NLTK's smoothed numerator; the product of the four
    numerators over the product of the four denominators (exact integers in float64, so a
    perfect match gives exactly 1) and the log brevity penalty then go through one log and
    one exp. The result agrees with NLTK to rounding (about 1e-16) and never exceeds 1.
    """
    hyp_len = index.lengths[rows][:, None]
    ref_len = index.lengths[cols][None, :]
    numerators = np.ones((len(hyp_len), ref_len.shape[1]), dtype=np.float64)
    for n, order in enumerate(index.orders, start=1):
        matches = _matches(order, rows, cols)
        if n == 1:
            no_unigram = matches == 0  # NLTK returns 0 outright
        numerators *= np.maximum(matches, np.float64(EPSILON))  # method1, in float64
    numerators /= _hyp_ngrams_product(hyp_len)
    log_bleu = np.log(numerators, out=numerators)
    log_bleu *= WEIGHT
    with np.errstate(divide="ignore", invalid="ignore"):
        log_bleu += np.minimum(0.0, 1.0 - ref_len / hyp_len)  # log brevity penalty, 0 if c > r
    bleu = np.exp(log_bleu, out=log_bleu)
    bleu[no_unigram] = 0.0  # also covers c == 0, where NLTK's brevity penalty is 0
    return bleu


def _row_blocks(n: int, triangle: bool) -> list[tuple[int, int]]:
    """Row ranges whose blocks hold about _BLOCK_CELLS cells.

    Full matrix: rows start..stop against all n columns. Upper triangle: rows 0..n-2, and
    rows start..stop against columns start..n, so blocks gain rows as the triangle narrows.
    """
    blocks, start = [], 0
    n_rows = max(0, n - 1) if triangle else n
    while start < n_rows:
        width = n - start if triangle else n
        stop = min(n_rows, start + max(1, _BLOCK_CELLS // width))
        blocks.append((start, stop))
        start = stop
    return blocks


def bleu_matrix(texts: Sequence[str], dense_min_df: int | None = None) -> np.ndarray:
    """(n, n) float64 matrix, [i, j] = sentence_bleu([texts[j].split()], texts[i].split(), method1).

    The diagonal is NLTK's value too (below 1 for texts shorter than 4 tokens).
    """
    index = build_index(texts, dense_min_df)
    out = np.empty((index.size, index.size), dtype=np.float64)
    for start, stop in _row_blocks(index.size, triangle=False):
        out[start:stop] = bleu_block(index, slice(start, stop), slice(None))
    return out


def bleu_distance_condensed(texts: Sequence[str], dense_min_df: int | None = None) -> np.ndarray:
    """R-Zero's distance 1 - BLEU(hypothesis=i, reference=j) for i < j, in scipy condensed order.

    This is the upper triangle that R-Zero mirrors into its symmetric matrix, laid out as
    `scipy.cluster.hierarchy.linkage` wants it (row-major, length n(n-1)/2); only the upper
    triangle is computed, and no (n, n) matrix is ever held.
    """
    index = build_index(texts, dense_min_df)
    n = index.size
    out = np.empty(n * (n - 1) // 2, dtype=np.float64)
    for start, stop in _row_blocks(n, triangle=True):
        bleu = bleu_block(index, slice(start, stop), slice(start, n))
        upper = np.arange(start, n)[None, :] > np.arange(start, stop)[:, None]  # j > i
        # row i's pairs (i, i+1..n-1) are contiguous in condensed order, from i*n - i(i+1)/2
        segment = slice(start * n - start * (start + 1) // 2, stop * n - stop * (stop + 1) // 2)
        np.subtract(1.0, bleu[upper], out=out[segment])
    return out


# --- the challenger's copy test ------------------------------------------------------------

_TOKEN = re.compile(r"\d+(?:\.\d+)?|[^\W\d_]+|[^\w\s]")
_END_PUNCTUATION = frozenset("?.!")


def canonical_form(text: str) -> tuple[str, ...]:
    """Operator-aware tokens of a question: lower-cased words, numbers, and every other symbol
    (+ − * / ^ = ( ) …) as its own token; spaces and closing ?.! ignored.

    ROUGE's tokenizer drops symbols, so "What is 8 + 4?" and "What is 8 * 4?" look equal to it;
    here they differ.

    >>> canonical_form("What is 8 + 4?") == canonical_form("what is 8+4 ?")
    True
    >>> canonical_form("What is 8 + 4?") == canonical_form("What is 8 * 4?")
    False
    """
    tokens = _TOKEN.findall(text.lower())
    while tokens and tokens[-1] in _END_PUNCTUATION:
        tokens.pop()
    return tuple(tokens)


def copies_shown(text: str, shown: Sequence[str]) -> bool:
    """Whether `text` is, in canonical form, one of the examples `shown` in its prompt."""
    form = canonical_form(text)
    return any(form == canonical_form(example) for example in shown)
