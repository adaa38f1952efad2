"""Shared by every test file: `tests/` on the import path, so the helpers of `tests/helpers/`
(fake backend, tiny model, toy domain, end-to-end runs) import as `helpers.<name>`."""

import sys
from pathlib import Path

TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)
