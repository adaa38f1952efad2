"""Full fine-tuning or LoRA for the CPU default? Time one policy update of each, side by side.

One GRPO update on the CPU is a forward and backward pass over the step's sequences plus an
AdamW step. This script times exactly that, with the default recipe's shapes (sequences of
prompt + response tokens, micro-batches), for full fine-tuning and for LoRA (peft) on the
same model and data, and prints seconds per update, tokens/s and peak memory.

    python tools/bench_finetune.py [--sequences 32] [--tokens 190] [--micro 4] [--rank 16]
"""

from __future__ import annotations

import argparse
import resource
from functools import partial

import torch
from timing import best_seconds

from coevolve.recipe.schema import DEFAULT_MODEL_DIR


def update(model, batch: torch.Tensor, micro: int, lr: float) -> None:
    """One update: forward+backward per micro-batch, then one AdamW step."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)  # lazy: its state is made in step()
    for lo in range(0, len(batch), micro):
        chunk = batch[lo : lo + micro]
        logits = model(input_ids=chunk).logits[:, :-1].float()
        logprobs = torch.log_softmax(logits, -1).gather(-1, chunk[:, 1:, None]).squeeze(-1)
        (-logprobs.mean() * micro / len(batch)).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def build(kind: str, path: str, rank: int):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa")
    if kind == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear"))
    model.train()
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL_DIR)
    parser.add_argument("--sequences", type=int, default=32, help="sequences per update (batch x group)")
    parser.add_argument("--tokens", type=int, default=190, help="prompt + response tokens per sequence")
    parser.add_argument("--micro", type=int, default=4, help="sequences per forward/backward pass")
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batch = torch.randint(100, 40_000, (args.sequences, args.tokens))
    rows = []
    for kind in ("full", "lora"):
        model = build(kind, args.model, args.rank)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        update(model, batch[: args.micro], args.micro, 1e-6)  # warm-up on one micro-batch
        seconds = best_seconds(partial(update, model, batch, args.micro, 1e-6), args.repeats, warmup=False)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        rows.append((kind, trainable, seconds, args.sequences * args.tokens / seconds, rss))
        del model
    print(f"one update: {args.sequences} sequences x {args.tokens} tokens, micro-batch {args.micro}, "
          f"{args.threads} threads, fp32, best of {args.repeats}")
    print(f"{'method':8} {'trainable':>12} {'s/update':>9} {'tokens/s':>9} {'max RSS so far GiB':>19}")
    for kind, trainable, seconds, tps, rss in rows:
        print(f"{kind:8} {trainable:>12,} {seconds:>9.1f} {tps:>9.0f} {rss:>19.2f}")
    print(f"LoRA / full time: {rows[1][2] / rows[0][2]:.2f}")


if __name__ == "__main__":
    main()
