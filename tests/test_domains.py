"""Domains on ugly model output: answer extraction, question parsing, the arithmetic oracle.

The math domain's math-verify checks and reasoning-gym (slow to import) get a few cases each;
the worker's time limit is tested in test_mathverify.py.
"""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from coevolve.domains import DOMAINS, build_domain
from coevolve.domains.answers import (
    answer_phrase,
    canonical_number,
    last_boxed,
    last_number,
    question_block,
)
from coevolve.domains.arithmetic import ArithmeticDomain, parse_expression, trivial_expression
from coevolve.domains.math import MathDomain
from coevolve.records import Question

# ---------------------------------------------------------------- answers.py


@pytest.mark.parametrize("text, expected", [
    (r"\boxed{12}", "12"),  # plain
    (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),  # nested braces kept
    (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),  # escaped braces are content
    (r"first \boxed{1}, no wait: \boxed{2}", "2"),  # several boxes: the last
    (r"\boxed{3} and then \boxed{4", None),  # last box unclosed: no earlier box instead
    (r"\boxed{12", None),  # truncated generation
    (r"\boxed 7 is it", "7"),  # LaTeX's brace-less form
    (r"\fbox{5}", "5"),  # \fbox counts too
    (r"$\boxed{ 42 }$. Some text after the answer.", "42"),  # spaces and trailing text
    (r"\boxed{}", None),  # empty box
    (r"\boxedx{3}", None),  # another command, not a box
    ("", None),  # empty completion
])
def test_last_boxed(text: str, expected: str | None) -> None:
    assert last_boxed(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("The answer is 42.", "42"),  # trailing period dropped
    (r"Answer: $\frac{1}{2}$.", r"\frac{1}{2}"),  # dollars and period dropped
    ("**Final Answer:** 7\nLet me check again", "7"),  # markdown, text on the next line
    ("the answer is 3.5. Next sentence", "3.5"),  # a decimal point is not a sentence end
    ("answer is 1. Hmm, no, the answer is 2.", "2"),  # the last phrase wins
    ("The answer isn't obvious", None),  # "isn't" is not "is"
    ("The answer is", None),  # nothing after it
    ("no phrase here", None),
])
def test_answer_phrase(text: str, expected: str | None) -> None:
    assert answer_phrase(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("1,234 apples", "1,234"),  # thousands commas kept as written
    ("we get 5-3", "3"),  # binary minus is not a sign
    ("x = −7", "-7"),  # unicode minus is a sign
    ("2.5 and then 3.75.", "3.75"),  # decimal, sentence period ignored
    ("the list 1,2,3", "3"),  # commas that are no thousands separators
    ("no digits", None),
    ("", None),
])
def test_last_number(text: str, expected: str | None) -> None:
    assert last_number(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("1,234", "1234"),  # thousands commas
    ("12.0", "12"),  # integral decimal
    ("0.50", "0.5"),  # trailing zeros
    (".5", "0.5"),  # no integer part
    ("-0", "0"),  # negative zero
    ("+5", "5"),  # explicit plus
    ("007", "7"),  # leading zeros
    ("−4", "-4"),  # unicode minus
    ("1,23", None),  # not a thousands grouping
    ("1e5", None),  # no exponents
    ("12 apples", None),  # not a plain number
    ("9" * 101, None),  # absurdly long
    ("", None),
])
def test_canonical_number(text: str, expected: str | None) -> None:
    assert canonical_number(text) == expected


@pytest.mark.parametrize("completion, expected", [
    ("<question>What is 2+2?</question>", "What is 2+2?"),
    ("Sure! <question>\n  What is 2+2?\n</question> Answer: 4", "What is 2+2?"),  # stripped
    ("<question>What is 2+2?", "What is 2+2?"),  # unclosed: runs to the end
    ("<QUESTION>Why?</QUESTION>", "Why?"),  # tag case ignored
    ("I'll use <question></question> tags. <question>Q2</question>", "Q2"),  # empty skipped
    ("<question>A</question><question>B</question>", "A"),  # the first block
    ("no tags at all", None),
    ("", None),
])
def test_question_block(completion: str, expected: str | None) -> None:
    assert question_block(completion) == expected


# ---------------------------------------------------------------- arithmetic


@pytest.fixture(scope="module")
def arithmetic() -> ArithmeticDomain:
    return ArithmeticDomain()


@pytest.mark.parametrize("category, completion, expected", [
    ("mixed_small", "<question>What is 2 + 7 × 3?</question>", "What is 2 + 7 * 3?"),  # ×
    ("mixed_small", "<question>Compute: (4-9)*3 =</question>", "What is (4 - 9) * 3?"),
    ("mul_small", "<question>What is 6 x 7?</question>", "What is 6 * 7?"),  # x as times
    ("div_small", "<question>What is 84 ÷ 7?", "What is 84 / 7?"),  # ÷, unclosed tag
    ("add_sub_small", "<question>What is 12 − 5?</question>", "What is 12 - 5?"),  # −
    ("add_sub_small", "<question>What is -5 + 3? Answer: -2</question>",
     "What is -5 + 3?"),  # leading minus; a bare number after it is no second expression
    ("add_sub_large", "<question>What is 1,234 + 5,678?</question>", "What is 1234 + 5678?"),
    ("add_sub_small", "<question></question><question>3+4</question>", "What is 3 + 4?"),
    ("add_sub_small", "What is 3 + 4?", None),  # no tag
    ("add_sub_small", "", None),  # empty completion
    ("add_sub_small", "<question>What is 6 * 7?</question>", None),  # operator not allowed
    ("mul_small", "<question>What is 12 * 7?</question>", None),  # literal too long
    ("mul_large", "<question>What is 2 * 3?</question>", None),  # not large enough
    ("mixed_small", "<question>What is 2 + 3?</question>", None),  # mixed needs * too
    ("add_sub_small", "<question>What is 1 + 2 + 3 + 4?</question>", None),  # too many terms
    ("div_small", "<question>What is 7 / 2?</question>", None),  # inexact division
    ("div_small", "<question>What is 7 / 0?</question>", None),  # division by zero
    ("add_sub_small", "<question>What is 3 + 4? Or 5 - 1?</question>", None),  # ambiguous
    ("add_sub_small", "<question>What is 2 ** 3?</question>", None),  # power
    ("add_sub_small", "<question>What is 1.5 + 2?</question>", None),  # decimal
    ("add_sub_small", "<question>What is 99999999999999999999999 + 1?</question>", None),
    ("add_sub_small", "<question>__import__('os').system('ls') + 1</question>", None),
    ("add_sub_small", "<question>What is 1 + 2?" + " la" * 300 + "</question>", None),  # long
])
def test_arithmetic_parse_question(arithmetic: ArithmeticDomain, category: str,
                                   completion: str, expected: str | None) -> None:
    assert arithmetic.parse_question(completion, category) == expected


@pytest.mark.parametrize("text, expected", [
    ("What is 12 + 7 * 3?", "33"),  # precedence
    ("What is (4 - 9) * 3?", "-15"),  # parentheses, negative result
    ("What is -6 / 3?", "-2"),  # exact division of a negative
    ("What is 1,000 × 3?", "3000"),  # commas and unicode
    ("What is 7 / 2?", None),  # inexact division has no integer answer
    ("What is 5 / (3 - 3)?", None),  # division by zero
    ("__import__('os').system('echo pwned')", None),  # injection: no expression at all
    ("What is (1).__class__?", None),  # attribute access
    ("What is 2 ** 100?", None),  # power is not allowed
    ("(" * 500 + "1 + 1" + ")" * 500, None),  # too long and too deep
    ("What is " + "9" * 30 + " * 2?", None),  # literal too long
    ("What is " + " * ".join(["999999999999999999"] * 3) + "?", None),  # result too large
    ("", None),
])
def test_arithmetic_oracle(arithmetic: ArithmeticDomain, text: str, expected: str | None) -> None:
    assert arithmetic.oracle(Question("q", "mixed_large", text)) == expected


@pytest.mark.parametrize("text", [
    "__import__('os')",  # call
    "1 if 1 else 2",  # conditional
    "[1] * 3",  # list
    "True + 1",  # bool literal
    "0x10 + 1",  # hex literal
    "1_000 + 1",  # underscores
    "+5 + 1",  # unary plus
    "7 // 2",  # floor division
    "3 % 2",  # modulo
])
def test_parse_expression_rejects(text: str) -> None:
    assert parse_expression(text) is None


@pytest.mark.parametrize("completion, expected", [
    (r"\boxed{42}", "42"),
    (r"The answer is \boxed{1,234}.", "1234"),  # commas removed
    (r"\boxed{12.0}", "12"),  # integral decimal
    (r"\boxed{7 + 5 = 12}", "12"),  # last number inside the box
    (r"\boxed{1} wait no \boxed{2} is right", "2"),  # several boxes
    (r"\boxed{twelve}. So 12", "12"),  # a box without a number: next source
    ("The answer is 42. Check: 6*7=42, times 3 is 126", "42"),  # phrase beats last number
    ("So it's 5 - 3 = 2", "2"),  # last number
    ("= −15", "-15"),  # unicode minus
    ("**Answer:** -7", "-7"),  # markdown
    ("huge " + "9" * 200, None),  # absurd number
    ("no number here", None),
    ("", None),
])
def test_arithmetic_extract_answer(arithmetic: ArithmeticDomain, completion: str,
                                   expected: str | None) -> None:
    assert arithmetic.extract_answer(completion) == expected


@pytest.mark.parametrize("a, b, expected", [
    ("12", "12.0", True),  # numeric equality
    ("1,234", "1234", True),  # commas
    ("-0", "0", True),  # zero's sign
    ("12", "13", False),
    ("abc", "abc", False),  # not numbers: no match, even with itself
    ("", "", False),
])
def test_arithmetic_equivalent(arithmetic: ArithmeticDomain, a: str, b: str,
                               expected: bool) -> None:
    assert arithmetic.equivalent(a, b) is expected


def test_arithmetic_generate_fits_its_category(arithmetic: ArithmeticDomain) -> None:
    rng = random.Random(0)
    for category in arithmetic.categories():
        for _ in range(20):
            text = arithmetic.generate(category, rng)
            assert arithmetic.parse_question(f"<question>{text}</question>", category) == text


def test_arithmetic_heldout_is_deterministic_and_labelled(arithmetic: ArithmeticDomain) -> None:
    first = arithmetic.heldout(per_category=5, seed=3)
    assert first == arithmetic.heldout(per_category=5, seed=3)
    assert first != arithmetic.heldout(per_category=5, seed=4)
    assert len(first) == 5 * len(arithmetic.categories())
    assert len({question.id for question in first}) == len(first)
    for question in first:
        assert question.label_source == "oracle"
        assert question.answer == arithmetic.oracle(question) is not None


def test_arithmetic_options() -> None:
    domain = build_domain("arithmetic", {"categories": ["add_sub_large"], "max_terms": 2})
    assert domain.categories() == ("add_sub_large",)
    assert domain.parse_question("<question>What is 100 + 1 + 1?</question>",
                                 "add_sub_large") is None  # capped at 2 terms
    with pytest.raises(ValueError, match="mul_small"):  # lists the valid names
        ArithmeticDomain(categories=["mul_smal"])
    with pytest.raises(ValueError, match="max_terms"):
        ArithmeticDomain(max_terms=1)


def test_unknown_category_raises(arithmetic: ArithmeticDomain) -> None:
    with pytest.raises(ValueError, match="add_sub_small"):
        arithmetic.parse_question("<question>1 + 1</question>", "algebra")


def test_challenger_prompt_shows_seeds(arithmetic: ArithmeticDomain) -> None:
    seeds = [Question("s", "mul_small", "What is 3 * 4?")]
    prompt = arithmetic.challenger_prompt("mul_small", seeds)
    assert "<question>What is 3 * 4?</question>" in prompt
    assert "<question></question>" in prompt


# ---------------------------------------------------------------- math


@pytest.fixture(scope="module")
def math_domain():
    domain = MathDomain(timeout_s=10.0)
    yield domain
    domain.close()


@pytest.mark.parametrize(
    "category, example, expected",
    [
        ("mul_small", "What is 5 * 7?", "Complete the question with a number from 1 to 9. Reply with the "
                                        "question only.\nWhat is 5 * _?"),
        ("div_small", "What is 18 / 3?", "Complete the question with a number that divides 18 exactly. Reply "
                                         "with the question only.\nWhat is 18 / _?"),
        ("add_sub_small", "What is 12 + 40 - 7?", "Complete the question with a number of at most 2 digits. "
                                                  "Reply with the question only.\nWhat is 12 + 40 - _?"),
        ("mixed_small", "What is (8 - 1) * 9?", "Complete the question with a number from 1 to 9. Reply with "
                                                "the question only.\nWhat is (8 - 1) * _?"),
    ],
)
def test_partial_prompt_blanks_the_last_number(category: str, example: str, expected: str) -> None:
    domain = ArithmeticDomain(challenger_prompt="partial")
    prompt = domain.challenger_prompt(category, [Question("q", category, example), Question("r", category, "x")])
    assert prompt == expected  # only the first example is used, and it is never shown whole
    assert example not in prompt


def test_partial_prompt_needs_an_example_and_a_known_style() -> None:
    with pytest.raises(ValueError, match="seeds_per_prompt"):
        ArithmeticDomain(challenger_prompt="partial").challenger_prompt("mul_small", [])
    with pytest.raises(ValueError, match="challenger_prompt.*one of examples, partial"):
        ArithmeticDomain(challenger_prompt="fill")



@pytest.mark.parametrize("completion, expected", [
    (r"so \boxed{\frac{1}{2}}.", r"\frac{1}{2}"),  # nested braces
    (r"\boxed{x} first, then \boxed{\sqrt{2}} finally", r"\sqrt{2}"),  # the last box
    (r"\boxed{} so the answer is $x^2+1$.", "x^2+1"),  # empty box: the phrase
    ("so 1,234", "1234"),  # plain numbers are canonical
    ("nothing", None),
    ("", None),
])
def test_math_extract_answer(math_domain: MathDomain, completion: str,
                             expected: str | None) -> None:
    assert math_domain.extract_answer(completion) == expected


@pytest.mark.parametrize("a, b, expected", [
    ("12", "12.0", True),  # numbers: decided locally
    ("12", "13", False),
    ("x + 1", "x+1", True),  # identical but for spaces
    ("", "1", False),  # empty never matches
    (r"\frac{1}{2}", "0.5", True),  # math-verify
    ("x+1", "1+x", True),  # math-verify
    ("2x", "3x", False),  # math-verify
])
def test_math_equivalent(math_domain: MathDomain, a: str, b: str, expected: bool) -> None:
    assert math_domain.equivalent(a, b) is expected
    assert math_domain.equivalent(b, a) is expected  # symmetric


def test_math_fast_paths_start_no_worker() -> None:
    domain = MathDomain()
    assert domain.equivalent("1,000", "1000.00") and not domain.equivalent("7", "8")
    assert domain._verifier is None


def test_math_parse_question(math_domain: MathDomain) -> None:
    assert math_domain.parse_question("<question> Find x if 2x = 4. </question>",
                                      "algebra") == "Find x if 2x = 4."
    assert math_domain.parse_question("<question>" + "x" * 3000, "algebra") is None
    with pytest.raises(ValueError, match="geometry"):
        math_domain.parse_question("<question>Q</question>", "poetry")


# ---------------------------------------------------------------- reasoning_gym


@pytest.fixture(scope="module")
def gym():
    return build_domain("reasoning_gym", {"groups": {"sums": ["chain_sum"],
                                                     "words": ["spell_backward", "syllogism"]}})


def test_gym_heldout_and_seeds(gym) -> None:
    heldout = gym.heldout(per_category=3, seed=0)
    assert heldout == gym.heldout(per_category=3, seed=0)
    assert [q.category for q in heldout].count("words") == 3  # spread over both tasks
    assert all(q.answer and q.label_source == "oracle" for q in heldout)
    seeds = gym.seed_questions("sums", 2, seed=0)
    assert {q.text for q in seeds}.isdisjoint(q.text for q in heldout)  # other stream
    prompt = gym.challenger_prompt("words")
    assert prompt.count("<question>") == 3  # two generated examples and the format


@pytest.mark.parametrize("completion, expected", [
    (r"Reversed: \boxed{ olleh }", "olleh"),
    ("The answer is: Yes.", "Yes"),
    (r"\boxed{a} \boxed{b}", "b"),
    ("I think olleh", None),  # no last-number or last-word fallback
])
def test_gym_extract_answer(gym, completion: str, expected: str | None) -> None:
    assert gym.extract_answer(completion) == expected


@pytest.mark.parametrize("a, b, expected", [
    (r"\boxed{Yes}", "Yes", True),  # box removed
    ("a,  b", "a, b", True),  # whitespace squeezed
    ("Yes", "yes", False),  # exact match is case-sensitive
    ("", "", False),
])
def test_gym_equivalent(gym, a: str, b: str, expected: bool) -> None:
    assert gym.equivalent(a, b) is expected


@pytest.mark.parametrize("groups, message", [
    ({"g": ["chain_sums"]}, "did you mean chain_sum"),  # typo: close matches and names
    ({"g": ["graph_color"]}, "no stored answers"),  # answer=None task
    ({"g": []}, "non-empty"),
])
def test_gym_rejects_bad_groups(groups: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_domain("reasoning_gym", {"groups": groups})


# ---------------------------------------------------------------- registry and imports


def test_builtin_domains_registered() -> None:
    build_domain("arithmetic")
    assert {"arithmetic", "math", "reasoning_gym"} <= set(DOMAINS)


def test_domains_import_no_heavy_modules() -> None:
    code = (
        "import sys, coevolve.domains.arithmetic, coevolve.domains.math, "
        "coevolve.domains.reasoning_gym; "
        "print(sorted(m for m in ('torch', 'verl', 'ray', 'reasoning_gym', 'math_verify', "
        "'sympy') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "completion, require_tags, expected",
    [
        # tags required: an untagged question is a format failure
        ("Question: What is 35 / 7?", True, None),
        # tags optional: the first non-empty line is read instead
        ("\n  Question: What is 35 / 7?\nThe answer is 5.", False, "What is 35 / 7?"),
        # tags optional but present: the block still wins over the first line
        ("Sure!\n<question>What is 8 / 2?</question>", False, "What is 8 / 2?"),
        # tags optional: a first line with two expressions stays ambiguous
        ("9 / 3 = 3 and 8 / 4 = 2", False, None),
    ],
)
def test_arithmetic_require_tags_option(completion, require_tags, expected):
    from coevolve.domains.arithmetic import ArithmeticDomain

    assert ArithmeticDomain(require_tags=require_tags).parse_question(completion, "div_small") == expected


def test_arithmetic_seed_questions_are_distinct_from_heldout_and_seeded():
    from coevolve.domains.arithmetic import ArithmeticDomain

    domain = ArithmeticDomain()
    seeds = domain.seed_questions("add_sub_small", 5, seed=1)
    assert seeds == domain.seed_questions("add_sub_small", 5, seed=1)
    heldout = [q.text for q in domain.heldout(5, seed=1) if q.category == "add_sub_small"]
    assert [q.text for q in seeds] != heldout  # another stream than the held-out set
    assert all(q.answer is not None and q.category == "add_sub_small" for q in seeds)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("What is 39 / 39?", True),  # a number by itself
        ("What is 84 / 1?", True),
        ("What is 1 * 7?", True),  # the identity on either side of a product
        ("What is 7 * 0?", True),
        ("What is 0 + 5?", True),
        ("What is 5 - 0?", True),
        ("What is 6 - 6?", True),
        ("What is (3 - 3) * 4 + 5?", True),  # anywhere inside a longer expression
        ("What is 0 - 5?", False),  # subtraction does not commute
        ("What is 1 / 7?", False),
        ("What is 7 + 7?", False),  # a number with itself, but work to do
        ("What is 7 * 7?", False),
        ("What is 84 / 7?", False),
        ("What is 2 * 3 + 4?", False),
        ("Tell me a joke", False),  # no expression: nothing to call trivial
    ],
)
def test_trivial_expression(text: str, expected: bool) -> None:
    assert trivial_expression(text) is expected


def test_only_arithmetic_knows_trivial_questions(arithmetic: ArithmeticDomain) -> None:
    assert arithmetic.trivial("What is 9 * 1?") and not arithmetic.trivial("What is 9 * 2?")
    assert not MathDomain().trivial("What is 9 * 1?")
