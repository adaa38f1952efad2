"""The CPU figures the code's choices rest on, at SmolLM2-135M's shapes (hidden 576, MLP 1536,
vocabulary 49152): drawing a token, oneDNN's packed weights against F.linear, bfloat16
against float32, the fast engine's weight refresh, and the import time of the verifiers.

    python tools/cpu_figures.py            # numbers in docs/results.md
"""

from __future__ import annotations

import importlib
import time
from functools import partial

import torch
import torch.nn.functional as F
from timing import best_seconds


def best(fn, repeats: int = 5) -> float:
    return best_seconds(fn, repeats)


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    scores = torch.randn(256, 49152)
    probs = torch.softmax(scores, -1)
    multinomial = best(lambda: torch.multinomial(probs, 1))
    inverse_cdf = best(lambda: torch.searchsorted(torch.exp(scores - scores.max(-1, keepdim=True).values).cumsum(-1),
                                                  torch.rand(256, 1), right=True))
    print(f"one token from 256 rows x 49152: torch.multinomial {multinomial * 1e3:.0f} ms, "
          f"inverse CDF (exp, cumsum, search) {inverse_cdf * 1e3:.0f} ms")
    for rows in (64, 256):
        for out in (2 * 1536, 49152):
            x, w = torch.randn(rows, 576), torch.randn(out, 576)
            packed = torch.ops.mkldnn._reorder_linear_weight(w, rows)
            ratio = best(partial(F.linear, x, w)) / best(
                partial(torch.ops.mkldnn._linear_pointwise, x, packed, None, "none", [], ""))
            print(f"linear {rows} rows, 576 -> {out}: oneDNN packed {ratio:.2f}x as fast as F.linear")
    a, b = torch.randn(256, 576), torch.randn(576, 1536)
    slower = best(lambda: a.bfloat16() @ b.bfloat16()) / best(lambda: a @ b)
    print(f"matmul 256x576 @ 576x1536: bfloat16 takes {slower:.0f}x the time of float32")
    for module in ("sympy", "reasoning_gym"):
        start = time.perf_counter()
        importlib.import_module(module)
        print(f"import {module}: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
