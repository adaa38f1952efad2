"""JSONL question files: what is accepted and the errors that name file, line and key."""

import json

import pytest

from coevolve.domains.files import QuestionFileError, load_questions


def write(tmp_path, rows, name="set.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_questions_get_ids_from_file_and_line_and_default_category(tmp_path):
    path = write(tmp_path, [{"question": " What is 2 + 2? ", "answer": 4}, "", {"question": "Q?", "category": "b"}])
    questions = load_questions(path, categories={"a", "b"}, default_category="a")
    assert [(q.id, q.category, q.text, q.answer, q.label_source) for q in questions] == [
        ("set:1", "a", "What is 2 + 2?", "4", "heldout"), ("set:3", "b", "Q?", None, None)]


@pytest.mark.parametrize("row, message", [
    ({"question": ""}, r"set.jsonl:1: key 'question' must be a non-empty string"),
    ({"question": "Q?", "answer": True}, r"set.jsonl:1: key 'answer' must be a non-empty string or a number"),
    ({"question": "Q?", "answer": " "}, r"key 'answer' must be a non-empty string or a number"),
    ({"question": "Q?", "answer": [1]}, r"key 'answer' must be"),
    ({"question": "Q?", "answer": "1", "category": "z"}, r"category 'z' is not one of the domain's categories \(a\)"),
    ({"question": "Q?", "answer": "1"}, r"no 'category' key"),
    ("{not json", r"set.jsonl:1: not valid JSON"),
    ("[1, 2]", r"expected a JSON object, got list"),
])
def test_malformed_rows_are_refused_with_file_line_and_key(tmp_path, row, message):
    with pytest.raises(QuestionFileError, match=message):
        load_questions(write(tmp_path, [row]), categories={"a"})


def test_missing_empty_and_unanswered_files_are_refused(tmp_path):
    with pytest.raises(QuestionFileError, match="no such file"):
        load_questions(tmp_path / "none.jsonl", categories={"a"})
    with pytest.raises(QuestionFileError, match="holds no questions"):
        load_questions(write(tmp_path, [""]), categories={"a"})
    with pytest.raises(QuestionFileError, match="set.jsonl:1: key 'answer' is required"):
        load_questions(write(tmp_path, [{"question": "Q?"}]), categories={"a"}, default_category="a",
                       require_answer=True)


@pytest.mark.parametrize("content, message", [
    # an integer JSON refuses to convert (over 4,300 digits)
    (b'{"question": "Q?", "answer": ' + b"9" * 5000 + b', "category": "a"}', r"set.jsonl:1: a value JSON cannot hold"),
    # nesting deeper than the parser's recursion
    (b'{"question": "Q?", "answer": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", r"set.jsonl:1: nested too deeply"),
    # bytes that are not UTF-8, on the second line
    (b'{"question": "Q?", "answer": 1, "category": "a"}\n{"question": "\xff"}', r"set.jsonl:2: not UTF-8"),
    # an infinite answer
    (b'{"question": "Q?", "answer": 1e400, "category": "a"}', r"key 'answer' must be"),
    # a category that is no string
    (b'{"question": "Q?", "answer": 1, "category": ["a"]}', r"category \['a'\] is not one"),
])
def test_hostile_files_are_refused_naming_file_and_line(tmp_path, content, message):
    path = tmp_path / "set.jsonl"
    path.write_bytes(content)
    with pytest.raises(QuestionFileError, match=message):
        load_questions(path, categories={"a"})
