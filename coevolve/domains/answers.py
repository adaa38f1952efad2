"""Cutting questions and answers out of free-form model text, shared by all domains.

Small models box some answers, end others with "The answer is 12." or just stop after a number;
each domain picks an extraction order from these helpers, a documented order, not a fallback.

>>> last_boxed(r"so \\boxed{\\frac{1}{2}}, i.e. \\boxed{0.5}")
'0.5'
>>> answer_phrase("Thus the final answer is: $1,234$. Done.")
'1,234'
>>> last_number("between -3 and 1,234.50 apples")
'1,234.50'
>>> canonical_number("-0012.500")
'-12.5'
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# A run of digits longer than this is not an answer but noise (and str -> int refuses > 4300).
MAX_NUMBER_DIGITS = 100
# A run of digits, commas and periods longer than this holds no number of MAX_NUMBER_DIGITS
# digits (with its commas and point); last_number skips it, which keeps the scan linear.
MAX_NUMBER_CHARS = 2 * MAX_NUMBER_DIGITS

_BOX_COMMANDS = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_QUESTION_BLOCK = re.compile(r"<question>(.*?)(?:</question>|$)", re.DOTALL | re.IGNORECASE)
_ANSWER_PHRASE = re.compile(r"answer\s*(?:is(?![\w'’])|:|=)\s*:?", re.IGNORECASE)
# A sign counts only where it cannot be a binary minus: "5-3" ends in 3, "= -3" in -3.
# Linear: a digit-led match starts only where a digit run starts (`(?<!\d)`), and possessive
# runs (`++`) are never split again to retry the end check.
_NUMBER = re.compile(
    r"(?:(?<![\w)\]])[-−])?"
    r"(?:(?<!\d)(?:\d{1,3}(?:,\d{3})++(?:\.\d++)?|\d++(?:\.\d++)?)|\.\d++)"
    r"(?!\d|,\d)"  # a match never stops inside a longer number
)
_LONG_NUMERIC_RUN = re.compile(rf"(?<![\d,.])[\d,.]{{{MAX_NUMBER_CHARS + 1},}}")  # from a run's start only
_CANONICAL_INPUT = re.compile(r"(?P<sign>[-+]?)(?P<int>\d*)(?:\.(?P<frac>\d*))?")
_UNICODE_MINUS = str.maketrans({"−": "-", "–": "-"})


def question_block(completion: str) -> str | None:
    """The stripped content of the first non-empty `<question>…</question>` block.

    A block whose closing tag is missing runs to the end of the completion: generation often
    stops on `</question>` and drops it. Empty blocks (a model echoing "<question></question>"
    from the instruction) are skipped.
    """
    for match in _QUESTION_BLOCK.finditer(completion):
        content = match.group(1).strip()
        if content:
            return content
    return None



def bounded_question_block(completion: str, max_chars: int) -> str | None:
    """`question_block`, or None when the block is longer than `max_chars`."""
    block = question_block(completion)
    return None if block is None or len(block) > max_chars else block


def last_tagged(text: str, opening: re.Pattern[str], closing: re.Pattern[str]) -> str | None:
    """The content of the last `<tag>…</tag>` pair, pairs read left to right without overlap.

    What `list(re.finditer("<tag>(.*?)</tag>"))[-1]` gives, in one pass: that pattern rescans
    to the end of the text from every unclosed opening tag.
    """
    found, position = None, 0
    while (start := opening.search(text, position)) is not None:
        end = closing.search(text, start.end())
        if end is None:
            break
        found, position = text[start.end():end.start()], end.end()
    return found


def question_request(instructions: Sequence[str], examples: Sequence[str], what: str) -> str:
    """A challenger prompt: instructions, optional tagged examples, then the reply format."""
    lines = list(instructions)
    if examples:
        lines.append("Examples:")
        lines.extend(f"<question>{text}</question>" for text in examples)
    lines.append(f"Reply with the {what} only, inside <question></question> tags, without its "
                 f"{'solution' if what == 'problem' else 'answer'}.")
    return "\n".join(lines)

def last_boxed(text: str) -> str | None:
    r"""The content of the last `\boxed{…}` (or `\fbox{…}`), with nested braces kept.

    `\boxed 5` (LaTeX's brace-less single-token form) gives "5". Only the last box counts: if
    it is unclosed (a truncated generation) the result is None, not an earlier box.
    """
    matches = list(_BOX_COMMANDS.finditer(text))
    if not matches:
        return None
    rest = text[matches[-1].end():]
    if rest.lstrip().startswith("{"):
        content = _braced(rest.lstrip())
    else:
        content = _bare_token(rest)
    if content is None:
        return None
    content = content.strip()
    return content or None


def _braced(text: str) -> str | None:
    """The content of the brace group `text` starts with, or None if it never closes.

    Escaped braces (`\\{`, `\\}`) are content, not grouping.
    """
    depth = 0
    escaped = False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[1:i]
    return None


def _bare_token(text: str) -> str | None:
    """The token after `\\boxed ` (one space or more, then up to whitespace or `$`)."""
    match = re.match(r"\s+([^\s$]+)", text)
    return match.group(1) if match else None


def answer_phrase(text: str) -> str | None:
    """What follows the last "answer is", "answer:" or "answer =", up to the end of its sentence.

    The sentence ends at a newline or at a period followed by whitespace (so "3.5" survives);
    markdown bold, `$` and a trailing period are removed.
    """
    matches = list(_ANSWER_PHRASE.finditer(text))
    if not matches:
        return None
    line = text[matches[-1].end():].split("\n", 1)[0]
    rest = re.split(r"\.\s", line, maxsplit=1)[0]
    answer = clean_answer(rest)
    return answer or None


def clean_answer(answer: str) -> str:
    """`answer` without surrounding whitespace, `$`, markdown `*`, and trailing periods."""
    return strip_end(strip_start(answer, "*$"), "*$.")


def strip_start(text: str, chars: str) -> str:
    """`text` without leading whitespace and `chars` (one pass, unlike `[\\s...]+` at `^`)."""
    start = 0
    while start < len(text) and (text[start].isspace() or text[start] in chars):
        start += 1
    return text[start:]


def strip_end(text: str, chars: str) -> str:
    """`text` without trailing whitespace and `chars`, in linear time.

    The regex `[\\s...]+$` retries at every character of a long inner run of them: quadratic.
    """
    end = len(text)
    while end > 0 and (text[end - 1].isspace() or text[end - 1] in chars):
        end -= 1
    return text[:end]


def last_number(text: str) -> str | None:
    """The last number in `text` as written ("1,234", "-3", "2.5"), or None if there is none.

    Runs of digits, commas and periods longer than MAX_NUMBER_CHARS are noise and skipped.
    """
    matches = _NUMBER.findall(_LONG_NUMERIC_RUN.sub(" ", text))
    if not matches:
        return None
    return matches[-1].translate(_UNICODE_MINUS)


def canonical_number(text: str) -> str | None:
    """The canonical decimal form of a plain number, or None if `text` is not one.

    Thousands commas, leading zeros, a `+` sign and trailing fractional zeros go; "-0" is "0".
    Strings with more than MAX_NUMBER_DIGITS digits are refused.
    """
    text = text.strip().translate(_UNICODE_MINUS)
    if re.fullmatch(r"[-+]?\d{1,3}(,\d{3})+(\.\d*)?", text):
        text = text.replace(",", "")
    match = _CANONICAL_INPUT.fullmatch(text)
    if match is None or not (match.group("int") or match.group("frac")):
        return None
    integer = match.group("int").lstrip("0") or "0"
    fraction = (match.group("frac") or "").rstrip("0")
    if len(integer) + len(fraction) > MAX_NUMBER_DIGITS:
        return None
    body = f"{integer}.{fraction}" if fraction else integer
    if body == "0":
        return "0"
    return f"-{body}" if match.group("sign") == "-" else body


def number_in(text: str | None) -> str | None:
    """The canonical form of `text` if it is a number, else of the last number inside it.

    "12" -> "12"; "x = 1,234" -> "1234"; "7 + 5 = 12" -> "12"; "twelve" -> None.
    """
    if text is None:
        return None
    whole = canonical_number(clean_answer(text))
    if whole is not None:
        return whole
    inner = last_number(text)
    return canonical_number(inner) if inner is not None else None
