"""Every CPU generation path of coevolve, at the default recipe's shapes, against the machine's limit.

Each workload of an iteration (`workloads`: votes, both rollouts, dataset questions, greedy
evaluation, shapes and sampling read from the recipe) is timed on each path (`generate`:
transformers.generate in batches, the baseline; the rollout server on either engine; the
generator on the fast engine): tokens/s (rows cut at end of sequence, prefill included), the
ratio to `generate`, and the share of the matmul limit (`matmul_rate` / `matmul_flops_per_token`).
Then the fast rollout's log-probs against the actor's forward pass, and a decode-step profile.

    python tools/bench_generation.py --json runs/bench/generation.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
from timing import best_seconds

from coevolve.backend.generation.fast.decode import FastEngine
from coevolve.backend.generation.generator import HFGenerator
from coevolve.backend.generation.server import HFRolloutServer
from coevolve.backend.models import prepare_base_model
from coevolve.domains import build_domain
from coevolve.measure.evaluation import recipe_heldout
from coevolve.recipe.load import DEFAULT_RECIPE, load_recipe
from coevolve.run.sampling import SamplingParams, greedy_params, vote_params
from coevolve.selfplay.examples import ExamplePool
from coevolve.selfplay.steps import challenger_message


@dataclass(frozen=True)
class Workload:
    name: str
    messages: list[str]  # user messages, each sampled `params.n` times
    params: SamplingParams
    logprobs: bool  # rollouts record log p(token) for the actor


@dataclass(frozen=True)
class Timing:
    workload: str
    path: str
    sequences: int
    tokens: int
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds


def workloads(recipe, questions: int) -> list[Workload]:
    """The generation work of one default iteration, at its shapes (fewer questions)."""
    domain = build_domain(recipe.domain.name, recipe.domain.options)
    categories = recipe.domain.categories or domain.categories()
    test, _ = recipe_heldout(recipe, domain, "test")
    per_category = max(1, questions // len(categories))
    asked = [q for c in categories for q in domain.seed_questions(c, per_category, 99)]
    solver = [domain.solver_prompt(q) for q in asked]
    ch = recipe.challenger
    seeds = {c: domain.seed_questions(c, ch.example_pool, recipe.seed) for c in categories}
    pool = ExamplePool(seeds, recipe.seed, ch.seeds_per_prompt)
    writers = [challenger_message(domain, categories[i % len(categories)],
                                  pool.draw(categories[i % len(categories)], i)) for i in range(questions)]
    s, d = recipe.solver, recipe.dataset
    return [
        Workload("votes", solver, vote_params(recipe, recipe.vote.samples), False),
        Workload("solver rollout", solver[: s.batch_size],
                 SamplingParams(n=s.group_size, temperature=s.temperature, top_p=s.top_p,
                                max_new_tokens=s.max_new_tokens), True),
        Workload("challenger rollout", writers[: ch.batch_size],
                 SamplingParams(n=ch.group_size, temperature=ch.temperature, top_p=ch.top_p,
                                max_new_tokens=ch.max_new_tokens), True),
        Workload("dataset questions", writers,
                 SamplingParams(n=1, temperature=d.temperature, top_p=d.top_p,
                                max_new_tokens=ch.max_new_tokens), False),
        Workload("greedy evaluation", [domain.solver_prompt(q) for q in test[:questions]],
                 greedy_params(recipe.eval.max_new_tokens), False),
    ]


def time_sampler(sampler: HFGenerator, work: Workload, seed: int) -> tuple[int, int, float]:
    sampler.generate(work.messages, work.params, seed=seed)
    stats = sampler.last_stats
    return stats.sequences, stats.generated_tokens, stats.seconds


def time_server(server: HFRolloutServer, prompts: list[list[int]], work: Workload, seed: int) -> tuple[int, int, float]:
    params = {**work.params.request(), "logprobs": work.logprobs}
    requests = [ids for ids in prompts for _ in range(work.params.n)]

    async def burst():
        return await asyncio.gather(*[server.generate(ids, dict(params), request_id=f"r{i}")
                                      for i, ids in enumerate(requests)])

    torch.manual_seed(seed)
    start = time.monotonic()
    outputs = asyncio.run(burst())
    seconds = time.monotonic() - start
    return len(requests), sum(len(o.token_ids) for o in outputs), seconds


def logprob_agreement(server: HFRolloutServer, prompts: list[list[int]], work: Workload, seed: int) -> dict:
    """The rollout's log-probs against the actor's (a forward pass over each whole row).

    The actor reuses the rollout's log-probs as pi_old on the CPU, so they must agree: the
    largest |difference| of log p(token) and verl's k3 estimate of KL(rollout || actor).
    """
    params = {**work.params.request(), "logprobs": True}
    requests = [ids for ids in prompts for _ in range(work.params.n)]

    async def burst():
        return await asyncio.gather(*[server.generate(ids, dict(params), request_id=f"lp{i}")
                                      for i, ids in enumerate(requests)])

    torch.manual_seed(seed)
    outputs = asyncio.run(burst())
    ratios = []
    with torch.no_grad():
        for prompt, output in zip(requests, outputs, strict=True):
            ids = torch.tensor([prompt + output.token_ids])
            logits = server.model(input_ids=ids).logits[0, len(prompt) - 1 : -1] / work.params.temperature
            actor = torch.log_softmax(logits, -1).gather(1, torch.tensor(output.token_ids)[:, None]).squeeze(1)
            ratios.append(actor - torch.tensor(output.log_probs))
    ratio = torch.cat(ratios).double()
    return {"tokens": int(ratio.numel()), "max_abs_logprob_diff": float(ratio.abs().max()),
            "k3_kl": float((ratio.exp() - 1 - ratio).mean())}


def make_server(model: str, engine: str, max_batch: int, threads: int) -> HFRolloutServer:
    config = SimpleNamespace(prompt_length=4096, response_length=512,
                             custom={"max_batch": max_batch, "torch_threads": threads, "engine": engine})
    return HFRolloutServer(config, {"path": model}, replica_rank=0)


def matmul_rate(size: int = 2048, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of a size^3 float32 matmul: torch's (MKL) and oneDNN's with a pre-packed weight."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    flops = 2 * size**3 / 1e9

    def best(fn) -> float:
        return flops / best_seconds(fn, repeats)

    rates = {"torch.mm": best(lambda: a @ b)}
    if torch.backends.mkldnn.is_available():
        packed = torch.ops.mkldnn._reorder_linear_weight(b, size)
        rates["onednn packed"] = best(lambda: torch.ops.mkldnn._linear_pointwise(a, packed, None, "none", [], ""))
    return rates


def matmul_flops_per_token(model) -> float:
    """2 x the weights of every linear layer (the output layer included), per generated token."""
    return 2.0 * sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def profile_decode_step(engine: FastEngine, batch: int, context: int) -> list[tuple[str, float]]:
    """Share of one decode step's time per kind of work, at `batch` rows and `context` columns."""
    from torch.profiler import ProfilerActivity, profile

    llama = engine.llama
    cache = llama.new_cache(batch, context + 8)
    cache.store.zero_()
    cache.attend(slice(None), batch)
    tokens = torch.randint(0, llama.embed.shape[0], (batch,))
    positions = torch.full((batch,), context)
    with torch.no_grad():
        llama.decode(tokens, positions, cache, context)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for step in range(3):
                hidden = llama.decode(tokens, positions + step, cache, context + step)
                llama.logits(hidden, 0.5)
    kinds = {"matmul (projections, output layer)": ("linear_pointwise", "aten::mm", "aten::addmm"),
             "attention (q.k, p.v)": ("aten::bmm", "aten::_softmax"),
             "top-k": ("aten::topk",)}
    totals: dict[str, float] = {}
    for event in prof.key_averages():
        kind = next((k for k, names in kinds.items() if any(n in event.key for n in names)), "elementwise and other")
        totals[kind] = totals.get(kind, 0.0) + event.self_cpu_time_total
    whole = sum(totals.values())
    return sorted(((k, v / whole) for k, v in totals.items()), key=lambda kv: -kv[1])


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(DEFAULT_RECIPE))
    parser.add_argument("--questions", type=int, default=48, help="distinct prompts per workload (votes: x samples)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-batch", type=int, default=None,
                        help="the fast paths' batch (default: the recipe's vote.batch_size, the servers' max_batch)")
    parser.add_argument("--baseline-batch", type=int, default=64,
                        help="generate's batch (64: vote.batch_size before the fast engine)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds; each path's median is shown")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    recipe = load_recipe(Path(args.recipe), [])
    model = prepare_base_model(recipe)
    baseline_batch = args.baseline_batch
    fast_batch = args.max_batch or recipe.vote.batch_size
    paths = {
        "generate": HFGenerator(model, batch_size=baseline_batch, engine="generate"),
        "server/generate": make_server(model, "generate", baseline_batch, args.threads),
        "server/fast": make_server(model, "fast", fast_batch, args.threads),
        "sampler/fast": HFGenerator(model, batch_size=fast_batch, engine="fast"),
    }
    tokenizer = paths["generate"].tokenizer
    works = workloads(recipe, args.questions)
    timings: list[Timing] = []
    for work in works:
        prompts = [tokenizer(paths["generate"].chat_prompt(m), add_special_tokens=False)["input_ids"]
                   for m in work.messages]
        for name, path in paths.items():
            runs = []
            for round_ in range(args.repeats):
                seed = args.seed + round_
                if isinstance(path, HFGenerator):
                    runs.append(time_sampler(path, work, seed))
                else:
                    runs.append(time_server(path, prompts, work, seed))
            sequences, tokens, seconds = sorted(runs, key=lambda r: r[1] / r[2])[(len(runs) - 1) // 2]
            timings.append(Timing(workload=work.name, path=name, sequences=sequences, tokens=tokens, seconds=seconds))
            print(f"  {work.name:<19} {name:<16} {tokens:>6} tokens {seconds:>7.2f} s", flush=True)

    rollout = next(w for w in works if w.name == "solver rollout")
    agreement = logprob_agreement(paths["server/fast"], [
        tokenizer(paths["generate"].chat_prompt(m), add_special_tokens=False)["input_ids"] for m in rollout.messages
    ], rollout, args.seed)
    rates = matmul_rate()
    best_rate = max(rates.values())
    per_token = matmul_flops_per_token(paths["generate"].model)
    limit = best_rate * 1e9 / per_token
    engine = paths["sampler/fast"].engine
    profile = profile_decode_step(engine, fast_batch, 64)

    print(f"\nmachine: {machine()}")
    print("matmul 2048^3 float32: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in rates.items()))
    print(f"limit: {best_rate:.0f} GFLOP/s / {per_token / 1e9:.3f} GFLOP per generated token = {limit:.0f} tokens/s "
          f"(matmuls of decoding only)")
    print(f"fast engine: kernels {engine.llama.kernels}, max_batch {fast_batch}; baseline batch {baseline_batch}\n")
    header = f"{'workload':<19} {'path':<16} {'seqs':>5} {'tokens':>6} {'seconds':>8} {'tokens/s':>9} {'vs generate':>11} {'of limit':>8}"
    print(header)
    print("-" * len(header))
    for work in works:
        rows = [t for t in timings if t.workload == work.name]
        base = rows[0].tokens_per_second
        for t in rows:
            print(f"{t.workload:<19} {t.path:<16} {t.sequences:>5} {t.tokens:>6} {t.seconds:>8.2f} "
                  f"{t.tokens_per_second:>9.1f} {t.tokens_per_second / base:>10.2f}x {t.tokens_per_second / limit:>8.0%}")
    ratios = {path: statistics.geometric_mean([
        next(t for t in timings if t.workload == w.name and t.path == path).tokens_per_second
        / next(t for t in timings if t.workload == w.name and t.path == "generate").tokens_per_second
        for w in works]) for path in paths}
    print("\ngeometric mean over workloads, vs generate: " + ", ".join(f"{p} {r:.2f}x" for p, r in ratios.items()))
    print(f"\nlog-prob agreement, server/fast on the solver rollout ({agreement['tokens']} tokens) against the "
          f"actor's forward pass: max |diff| {agreement['max_abs_logprob_diff']:.1e}, "
          f"KL (k3) {agreement['k3_kl']:.1e}")
    print(f"\none fast decode step, {fast_batch} rows, 64 columns of context:")
    for kind, share in profile:
        print(f"  {kind:<36} {share:>5.0%}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "machine": machine(), "matmul_gflops": rates, "limit_tokens_per_second": limit,
            "matmul_flops_per_token": per_token, "fast_max_batch": fast_batch, "baseline_batch": baseline_batch,
            "kernels": engine.llama.kernels,
            "timings": [asdict(t) | {"tokens_per_second": t.tokens_per_second} for t in timings],
            "geomean_vs_generate": ratios, "decode_step_profile": dict(profile),
            "logprob_agreement": agreement,
        }, indent=2))


if __name__ == "__main__":
    main()
