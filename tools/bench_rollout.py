"""How fast is the batching rollout server, next to plain batched `generate`?

On the same prompts: (a) `HFGenerator` on engine "generate", cut into --batch rows;
(b) `HFRolloutServer`, n copies of each prompt as concurrent requests (max_batch = --batch) on
--engine; (c) with --single, the server one request at a time. Methods run in turns for
--repeats rounds and each one's median round is shown (the machine is shared). Every sequence
runs to exactly --max-new-tokens (end of sequence masked: vLLM's `min_tokens`), unless
--natural-length; tools/bench_generation.py compares the engines.

    python tools/bench_rollout.py --prompts 8 --n 4 --max-new-tokens 32 --batch 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import torch

from coevolve.backend.generation.generator import HFGenerator
from coevolve.backend.generation.server import HFRolloutServer
from coevolve.recipe.schema import DEFAULT_MODEL_DIR
from coevolve.run.sampling import SamplingParams


@dataclass(frozen=True)
class Result:
    method: str
    sequences: int
    batches: int
    tokens: int
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds


def questions(count: int) -> list[str]:
    """Arithmetic questions of a few different lengths (deterministic)."""
    tails = ["", " Think step by step.", " Give the final answer as \\boxed{number}, after explaining each step."]
    return [f"What is {3 + i} + {7 * i} * {i % 5 + 2}?{tails[i % len(tails)]}" for i in range(count)]


class RunsToItsLimit:
    """An engine whose rows all run to their limit: end of sequence masked until then."""

    def __init__(self, engine) -> None:
        self.engine = engine

    def generate(self, prompts: list[list[int]], *, limits: list[int], key):
        return self.engine.generate(prompts, limits=limits, key=replace(key, min_tokens=max(limits)))


def bench_sampler(sampler: HFGenerator, messages: list[str], args: argparse.Namespace) -> Result:
    params = SamplingParams(n=args.n, temperature=args.temperature, max_new_tokens=args.max_new_tokens)
    sampler.generate(messages, params, seed=args.seed)
    stats = sampler.last_stats
    batches = -(-stats.sequences // sampler.batch_size)
    return Result(method=f"(a) HFGenerator batch={sampler.batch_size}", sequences=stats.sequences, batches=batches,
                  tokens=stats.generated_tokens, seconds=stats.seconds)


def bench_server(server: HFRolloutServer, prompts: list[list[int]], args: argparse.Namespace, label: str) -> Result:
    params = {"temperature": args.temperature, "top_p": 1.0, "top_k": -1, "repetition_penalty": 1.0,
              "logprobs": False, "max_tokens": args.max_new_tokens}
    if not args.natural_length:
        params["min_tokens"] = args.max_new_tokens
    requests = [ids for ids in prompts for _ in range(args.n)]

    async def burst():
        calls = [server.generate(ids, dict(params), request_id=f"r{i}") for i, ids in enumerate(requests)]
        return await asyncio.gather(*calls)

    server.reset_stats()
    torch.manual_seed(args.seed)
    start = time.monotonic()
    outputs = asyncio.run(burst())
    seconds = time.monotonic() - start
    tokens = sum(len(o.token_ids) for o in outputs)
    return Result(method=label, sequences=len(requests), batches=server.stats()["batches"], tokens=tokens,
                  seconds=seconds)


def make_server(model: str, max_batch: int, args: argparse.Namespace) -> HFRolloutServer:
    config = SimpleNamespace(
        prompt_length=4096, response_length=args.max_new_tokens,
        custom={"max_batch": max_batch, "torch_threads": args.threads, "engine": args.engine},
    )
    return HFRolloutServer(config, {"path": model}, replica_rank=0)


def median_result(runs: list[Result]) -> Result:
    """The run with the median tokens/s (an actual run, so its columns agree)."""
    ranked = sorted(runs, key=lambda r: r.tokens_per_second)
    return ranked[(len(ranked) - 1) // 2]


def print_table(results: list[Result]) -> None:
    print(f"{'method':<34} {'seqs':>5} {'batches':>7} {'tokens':>7} {'seconds':>8} {'tokens/s':>9} {'vs (a)':>7}")
    base = results[0].tokens_per_second
    for r in results:
        print(f"{r.method:<34} {r.sequences:>5} {r.batches:>7} {r.tokens:>7} {r.seconds:>8.2f} "
              f"{r.tokens_per_second:>9.1f} {r.tokens_per_second / base:>7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL_DIR, help="HF model directory (tools/prepare_model.py)")
    parser.add_argument("--prompts", type=int, default=8, help="distinct prompts")
    parser.add_argument("--n", type=int, default=4, help="samples per prompt (verl's rollout.n)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32, help="rows per generate call, both methods")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--natural-length", action="store_true", help="stop at EOS instead of a fixed length")
    parser.add_argument("--engine", choices=("generate", "fast"), default="generate", help="the server's engine")
    parser.add_argument("--single", action="store_true", help="also time one request at a time")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; the median round is shown")
    parser.add_argument("--json", type=Path, help="also write the table here")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    sampler = HFGenerator(args.model, batch_size=args.batch, engine="generate")
    if not args.natural_length:
        sampler.engine = RunsToItsLimit(sampler.engine)
    messages = questions(args.prompts)
    prompts = [sampler.tokenizer(sampler.chat_prompt(m), add_special_tokens=False)["input_ids"] for m in messages]
    server = make_server(args.model, args.batch, args)
    warmup = argparse.Namespace(**{**vars(args), "n": 1, "max_new_tokens": 2})
    bench_sampler(sampler, messages[:2], warmup)
    bench_server(server, prompts[:2], warmup, "warm-up")

    single = make_server(args.model, 1, args) if args.single else None
    rounds: list[list[Result]] = []
    for _ in range(args.repeats):
        results = [bench_sampler(sampler, messages, args),
                   bench_server(server, prompts, args, f"(b) HFRolloutServer max_batch={args.batch} {args.engine}")]
        if single is not None:
            results.append(bench_server(single, prompts, args, "(c) HFRolloutServer max_batch=1"))
        rounds.append(results)
    results = [median_result([r[i] for r in rounds]) for i in range(len(rounds[0]))]
    lengths = [len(p) for p in prompts]
    print(f"model {args.model}: {args.prompts} prompts ({min(lengths)}-{max(lengths)} tokens) x n={args.n}, "
          f"{'up to' if args.natural_length else 'exactly'} {args.max_new_tokens} new tokens, "
          f"temperature {args.temperature}, {args.threads} threads, median of {args.repeats} rounds")
    print_table(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(r) | {"tokens_per_second": r.tokens_per_second}
                                         for r in results], indent=2))


if __name__ == "__main__":
    main()
