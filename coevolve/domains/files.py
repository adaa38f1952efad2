"""Questions from JSONL files: held-out sets with true answers, few-shot seed questions.

One JSON object per line with a `question` (the text), optionally an `answer` and a
`category`. Errors name the file, the line and the key, and say what is allowed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from pathlib import Path
from typing import Any

from coevolve.records import Question


class QuestionFileError(ValueError):
    """A question file that is missing or malformed; the message names file and line."""


def read_jsonl(path: str | Path, *, error: type[Exception] = QuestionFileError) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of a JSONL file; a missing, unreadable
    or malformed file raises `error` (built from one message naming the file and line)."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise error(f"{path}: cannot be read ({err.strerror or err})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise error(f"{path}:{line}: not UTF-8 (byte {err.start}); save the file as UTF-8") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise error(f"{path}:{number}: not valid JSON ({err.msg})") from None
        except ValueError as err:  # e.g. an integer of more than 4,300 digits
            raise error(f"{path}:{number}: a value JSON cannot hold here ({err})") from None
        except RecursionError:
            raise error(f"{path}:{number}: nested too deeply") from None
        if not isinstance(row, dict):
            raise error(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        rows.append((number, row))
    return rows


def load_questions(
    path: str | Path,
    *,
    categories: Collection[str],
    default_category: str | None = None,
    require_answer: bool = False,
    label_source: str | None = "heldout",
) -> list[Question]:
    """The questions of a JSONL file, ids `<file stem>:<line>`.

    `category` must be one of `categories`; a row without one gets `default_category` (an
    error when that is None). `require_answer` makes a missing `answer` an error.
    """
    path = Path(path)
    questions = []
    for number, row in read_jsonl(path):
        where = f"{path}:{number}"
        text = row.get("question")
        if not isinstance(text, str) or not text.strip():
            raise QuestionFileError(f"{where}: key 'question' must be a non-empty string, got {text!r}")
        answer = row.get("answer")
        if answer is None and require_answer:
            raise QuestionFileError(f"{where}: key 'answer' is required in a held-out file")
        if answer is not None and (isinstance(answer, bool) or not isinstance(answer, (str, int, float))
                                   or (isinstance(answer, float) and not math.isfinite(answer))
                                   or not str(answer).strip()):
            raise QuestionFileError(f"{where}: key 'answer' must be a non-empty string or a number, got {answer!r}")
        category = row.get("category", default_category)
        if category is None:
            raise QuestionFileError(f"{where}: no 'category' key, and the file sets no default category")
        if not isinstance(category, str) or category not in categories:
            raise QuestionFileError(
                f"{where}: category {category!r} is not one of the domain's categories "
                f"({', '.join(sorted(categories))})"
            )
        questions.append(Question(
            id=f"{path.stem}:{number}", category=str(category), text=text.strip(),
            answer=None if answer is None else str(answer).strip(),
            label_source=label_source if answer is not None else None,
        ))
    if not questions:
        raise QuestionFileError(f"{path}: holds no questions")
    return questions
