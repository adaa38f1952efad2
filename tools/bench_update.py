"""The update's forward and backward on one micro-batch of GRPO groups, verl's packed layout
against the shared-prompt layout (coevolve/backend/shared_prefix.py), in one process, no Ray.

The micro-batch has the default recipe's shapes: `--prompts` questions x `--group` answers, the
solver's real prompt (the recipe's template and system turn, ~25 tokens) and answers of
`--answer-tokens` tokens. Both layouts run through verl's own engine methods with coevolve's
response-position head (coevolve/backend/response_logits.py); the log-probabilities must agree.

    python tools/bench_update.py [--prompts 4 --group 4 --answer-tokens 10 --repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def micro_batch(prompts: list[list[int]], group: int, answer_tokens: int, vocab: int):
    """verl's unpadded update micro-batch: each prompt followed by `group` random answers."""
    from tensordict import TensorDict
    from verl.utils import tensordict_utils as tu
    from verl.workers.utils.padding import left_right_2_no_padding

    generator = torch.Generator().manual_seed(0)
    width = max(len(p) for p in prompts)
    rows = len(prompts) * group
    prompt_ids = torch.zeros(rows, width, dtype=torch.long)
    answers = torch.randint(3, vocab, (rows, answer_tokens), generator=generator)
    attention = torch.zeros(rows, width + answer_tokens, dtype=torch.long)
    for row in range(rows):
        prompt = prompts[row // group]
        prompt_ids[row, width - len(prompt):] = torch.tensor(prompt)
        attention[row, width - len(prompt):] = 1
    batch = TensorDict({"prompts": prompt_ids, "responses": answers, "input_ids": torch.cat([prompt_ids, answers], 1),
                        "attention_mask": attention, "response_mask": torch.ones(rows, answer_tokens, dtype=torch.long),
                        "position_ids": (attention.cumsum(-1) - 1).clamp(min=0)}, batch_size=rows)
    batch = left_right_2_no_padding(batch)
    tu.assign_non_tensor(batch, use_remove_padding=True, temperature=0.5, calculate_entropy=False)
    return batch


def step(engine, model, batch, *, shared: bool) -> tuple[float, torch.Tensor, int]:
    """Seconds of one forward and backward, the response log-probs, the tokens the model ran."""
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead

    from coevolve.backend import response_logits

    inputs, outputs = FSDPEngineWithLMHead.prepare_model_inputs, FSDPEngineWithLMHead.prepare_model_outputs
    response_logits.SHARE_PROMPTS = shared
    start = time.perf_counter()
    model_inputs, output_args = inputs(engine, micro_batch=batch)
    output = model(**model_inputs, use_cache=False)
    log_probs = outputs(engine, output=output, output_args=output_args, micro_batch=batch,
                        logits_processor_func=None)["log_probs"]
    log_probs.values().sum().backward()
    seconds = time.perf_counter() - start
    model.zero_grad(set_to_none=True)
    return seconds, log_probs.values().detach(), model_inputs["input_ids"].shape[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(REPO / "recipes" / "arithmetic-cpu.yaml"))
    parser.add_argument("--prompts", type=int, default=4, help="distinct prompts per micro-batch")
    parser.add_argument("--group", type=int, default=4, help="answers per prompt")
    parser.add_argument("--answer-tokens", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per layout (after one warm-up)")
    args = parser.parse_args()

    from transformers import AutoModelForCausalLM, AutoTokenizer
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead

    from coevolve.backend import response_logits
    from coevolve.backend.models import prepare_base_model
    from coevolve.domains import build_domain
    from coevolve.recipe.load import load_recipe
    from coevolve.run.sampling import chat_messages

    recipe = load_recipe(Path(args.recipe), [])
    model_dir = prepare_base_model(recipe)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    domain = build_domain(recipe.domain.name, recipe.domain.options)
    questions = domain.heldout(args.prompts, 11)[:args.prompts]
    prompts = [list(tokenizer.apply_chat_template(chat_messages(domain.solver_prompt(q), recipe.model.system_turn),
                                                  add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
               for q in questions]
    response_logits.install()
    engine = object.__new__(FSDPEngineWithLMHead)  # the attributes the two engine methods read
    engine.module, engine.use_ulysses_sp, engine.pad_to_length = model, False, None
    engine._get_packed_pad_size = lambda length: 0
    batch = micro_batch(prompts, args.group, args.answer_tokens, model.config.vocab_size)
    results = {}
    for shared in (False, True):
        step(engine, model, batch, shared=shared)  # warm-up
        runs = [step(engine, model, batch, shared=shared) for _ in range(args.repeats)]
        results[shared] = (statistics.median(r[0] for r in runs), runs[0][1], runs[0][2])
    torch.testing.assert_close(results[True][1], results[False][1], rtol=1e-4, atol=1e-4)
    print(f"{args.prompts} prompts x {args.group} answers, prompt {statistics.mean(map(len, prompts)):.0f} tokens, "
          f"answers {args.answer_tokens} tokens, {torch.get_num_threads()} threads, forward + backward, "
          f"median of {args.repeats}:")
    for shared, name in ((False, "packed, prompt per answer"), (True, "shared prompt")):
        seconds, _, tokens = results[shared]
        print(f"  {name:<26} {tokens:5d} tokens {seconds:7.3f} s")
    print(f"  speed-up {results[False][0] / results[True][0]:.2f}x, log-probs equal")


if __name__ == "__main__":
    main()
