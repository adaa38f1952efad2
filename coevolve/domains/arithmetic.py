"""Integer arithmetic: a domain in which every question has a computable true answer.

With an oracle the loop measures, live, how often the solver's majority vote (the
pseudo-label) is right, which R-Zero could only estimate after the fact; its small categories
are within reach of tiny models (SmolLM2-135M), so the whole loop runs on a CPU; and its
categories differ by operation and size, giving the curriculum bandit arms of clearly
different difficulty. Model text is never evaluated: an expression is parsed with `ast`, and
only integer literals, `+ - * /`, unary minus and parentheses are accepted; every `/` must
divide exactly.
"""

from __future__ import annotations

import ast
import dataclasses
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from coevolve.domains import register_domain
from coevolve.domains.answers import (
    answer_phrase,
    canonical_number,
    last_boxed,
    last_number,
    number_in,
    question_block,
    question_request,
)
from coevolve.domains.base import Domain, DomainOptionError
from coevolve.domains.base import solver_template as check_template
from coevolve.records import Question

MAX_QUESTION_CHARS = 500  # a longer <question> block is rambling, not an arithmetic question
MAX_EXPRESSION_CHARS = 200
MAX_LITERAL_DIGITS = 18
MAX_LITERALS = 16
MAX_DEPTH = 24  # nesting of the syntax tree
MAX_ABS_VALUE = 10**36  # intermediate results beyond this are refused
MAX_GENERATION_TRIES = 1000

_OPERATORS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
}
_UNICODE_OPERATORS = str.maketrans({"×": "*", "·": "*", "⋅": "*", "∗": "*", "÷": "/",
                                    "∕": "/", "−": "-", "–": "-", "—": "-"})
_TIMES_X = re.compile(r"(?<=[\d)])\s*[xX]\s*(?=[\d(])")  # "12 x 3" means 12 * 3
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_EXPRESSION_RUN = re.compile(r"[\d+\-*/(). \t]+")
_EXPRESSION_CHARS = re.compile(r"[\d+\-*/() \t]+")  # no letters, dots, underscores, quotes


@dataclass(frozen=True)
class Expression:
    """A parsed arithmetic expression that passed the safety limits.

    `value` is None when a division is inexact or by zero. `literals` holds absolute values.
    """

    text: str  # canonical rendering, e.g. "(4 - 9) * 3"
    value: int | None
    ops: frozenset[str]
    literals: tuple[int, ...]


@dataclass(frozen=True)
class ArithmeticCategory:
    """What questions of one category look like: a bandit arm of the arithmetic domain."""

    name: str
    description: str  # shown to the challenger
    ops: frozenset[str]  # operators that may appear
    required: tuple[frozenset[str], ...]  # each group must contribute at least one operator
    max_digits: int  # no literal has more digits
    min_largest_digits: int  # the largest literal has at least this many digits
    min_terms: int  # number of integer literals
    max_terms: int
    parentheses: bool = False  # whether `generate` may add parentheses

    def accepts(self, expression: Expression) -> bool:
        """Whether `expression` belongs to this category."""
        largest = max(len(str(literal)) for literal in expression.literals)
        return (
            expression.ops <= self.ops
            and all(expression.ops & group for group in self.required)
            and self.min_terms <= len(expression.literals) <= self.max_terms
            and self.min_largest_digits <= largest <= self.max_digits
        )


def _category(name: str, description: str, *, ops: str, required: Sequence[str], max_digits: int,
              min_largest_digits: int, terms: tuple[int, int], parentheses: bool = False
              ) -> ArithmeticCategory:
    return ArithmeticCategory(
        name=name, description=description, ops=frozenset(ops),
        required=tuple(frozenset(group) for group in required), max_digits=max_digits,
        min_largest_digits=min_largest_digits, min_terms=terms[0], max_terms=terms[1],
        parentheses=parentheses,
    )


CATEGORIES: tuple[ArithmeticCategory, ...] = (
    _category("add_sub_small", "addition and subtraction of numbers below 100",
              ops="+-", required=["+-"], max_digits=2, min_largest_digits=1, terms=(2, 3)),
    _category("add_digits", "addition of two one-digit numbers",
              ops="+", required=["+"], max_digits=1, min_largest_digits=1, terms=(2, 2)),
    _category("sub_digits", "subtraction of two one-digit numbers",
              ops="-", required=["-"], max_digits=1, min_largest_digits=1, terms=(2, 2)),
    _category("add_sub_digits", "addition or subtraction of two one-digit numbers",
              ops="+-", required=["+-"], max_digits=1, min_largest_digits=1, terms=(2, 2)),
    _category("add_sub_large", "addition and subtraction with numbers of 3 or 4 digits",
              ops="+-", required=["+-"], max_digits=4, min_largest_digits=3, terms=(2, 4)),
    _category("mul_small", "multiplication of two one-digit numbers",
              ops="*", required=["*"], max_digits=1, min_largest_digits=1, terms=(2, 2)),
    _category("mul_large", "multiplication with numbers of 2 or 3 digits",
              ops="*", required=["*"], max_digits=3, min_largest_digits=2, terms=(2, 3)),
    _category("div_small", "exact division of a number below 100 by a smaller number",
              ops="/", required=["/"], max_digits=2, min_largest_digits=1, terms=(2, 2)),
    _category("mixed_small", "one-digit numbers combined with +, - and *, maybe in parentheses",
              ops="+-*", required=["+-", "*"], max_digits=1, min_largest_digits=1, terms=(3, 3), parentheses=True),
    _category("mixed_large", "two-digit numbers combined with +, -, * and exact /, "
              "maybe in parentheses",
              ops="+-*/", required=["+-", "*/"], max_digits=2, min_largest_digits=2, terms=(3, 5), parentheses=True),
)


def parse_expression(text: str) -> Expression | None:
    """`text` parsed as an integer expression, or None if it is anything else or too big.

    >>> parse_expression("12 + 7*3").value
    33
    >>> parse_expression("__import__('os')") is None
    True
    """
    if len(text) > MAX_EXPRESSION_CHARS or not _EXPRESSION_CHARS.fullmatch(text):
        return None
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    parts = _collect(tree.body, depth=0)
    if parts is None or len(parts[1]) > MAX_LITERALS:
        return None
    ops, literals = parts
    return Expression(ast.unparse(tree.body), _evaluate(tree.body), ops, literals)


def _collect(node: ast.expr, depth: int) -> tuple[frozenset[str], tuple[int, ...]] | None:
    """The operators and literal magnitudes of an allowed tree, or None if it is not allowed."""
    if depth > MAX_DEPTH:
        return None
    if isinstance(node, ast.Constant):
        value = node.value
        if type(value) is not int or len(str(value)) > MAX_LITERAL_DIGITS:
            return None
        return frozenset(), (value,)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return _collect(node.operand, depth + 1)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left = _collect(node.left, depth + 1)
        right = _collect(node.right, depth + 1)
        if left is None or right is None:
            return None
        return left[0] | right[0] | {_OPERATORS[type(node.op)]}, left[1] + right[1]
    return None


def _evaluate(node: ast.expr) -> int | None:
    """The value of a tree that `_collect` accepted; None on an inexact or zero division."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand)
        return None if operand is None else -operand
    assert isinstance(node, ast.BinOp)
    left, right = _evaluate(node.left), _evaluate(node.right)
    if left is None or right is None:
        return None
    op = _OPERATORS[type(node.op)]
    if op == "/":
        if right == 0 or left % right != 0:
            return None
        value = left // right
    else:
        value = {"+": left + right, "-": left - right, "*": left * right}[op]
    return value if abs(value) <= MAX_ABS_VALUE else None


def find_expression(text: str) -> Expression | None:
    """The one arithmetic expression inside free text, e.g. "What is 12 + 7 × 3?".

    Unicode operators, `x` between numbers and thousands commas are normalised first. Every
    run of expression characters that parses and has a binary operator is a candidate; the
    text must hold exactly one, otherwise it is ambiguous and the result is None. Texts over
    MAX_QUESTION_CHARS are refused.
    """
    if len(text) > MAX_QUESTION_CHARS:
        return None
    text = _TIMES_X.sub(" * ", text.translate(_UNICODE_OPERATORS))
    text = _THOUSANDS_COMMA.sub("", text)
    candidates: list[Expression] = []
    for run in _EXPRESSION_RUN.findall(text):
        run = re.sub(r"[\s.]+$", "", run.strip())  # a sentence's final period is no decimal
        if not re.search(r"\d", run) or not re.search(r"[-+*/]", run):
            continue
        expression = parse_expression(run)
        if expression is not None and expression.ops:
            candidates.append(expression)
    return candidates[0] if len(candidates) == 1 else None


def true_answer(text: str) -> str | None:
    """The value of the one expression in `text` as an integer string, or None."""
    expression = find_expression(text)
    if expression is None or expression.value is None:
        return None
    return str(expression.value)


def trivial_expression(text: str) -> bool:
    """Whether the one expression in `text` applies an operation that leaves a number as it is
    or gives 0 or 1 whatever the number: x * 1, x * 0, x / 1, x / x, x + 0, x - 0, x - x (either
    side where the operation commutes). False when `text` holds no expression.

    >>> trivial_expression("What is 39 / 39?"), trivial_expression("What is 8 * 1?")
    (True, True)
    >>> trivial_expression("What is 42 / 7?"), trivial_expression("What is (3 - 3) * 4 + 5?")
    (False, True)
    """
    expression = find_expression(text)
    if expression is None:
        return False
    tree = ast.parse(expression.text, mode="eval")
    return any(_identity(node) for node in ast.walk(tree) if isinstance(node, ast.BinOp))


def _identity(node: ast.BinOp) -> bool:
    left, right = ast.dump(node.left), ast.dump(node.right)
    literal = {side: n.value for side, n in (("left", node.left), ("right", node.right))
               if isinstance(n, ast.Constant)}
    if isinstance(node.op, ast.Mult):
        return any(value in (0, 1) for value in literal.values())
    if isinstance(node.op, ast.Add):
        return 0 in literal.values()
    if isinstance(node.op, (ast.Sub, ast.Div)):
        neutral = 0 if isinstance(node.op, ast.Sub) else 1
        return literal.get("right") == neutral or left == right
    return False


def question_text(expression: Expression) -> str:
    """The normalised question asking for `expression`."""
    return f"What is {expression.text}?"


def random_expression(category: ArithmeticCategory, rng: random.Random) -> str:
    """A random expression shaped like `category` (it may still fail `accepts` or divide
    unevenly: `generate` rejects those)."""
    terms = rng.randint(category.min_terms, category.max_terms)
    numbers = [_random_literal(category.max_digits, rng) for _ in range(terms)]
    numbers[rng.randrange(terms)] = _random_literal(
        category.max_digits, rng, category.min_largest_digits
    )
    ops = [rng.choice(sorted(category.ops)) for _ in range(terms - 1)]
    for i in reversed(range(terms - 1)):  # right to left, so each divisor is final when used
        if ops[i] == "/":
            quotient_limit = max(1, (10**category.max_digits - 1) // numbers[i + 1])
            numbers[i] = numbers[i + 1] * rng.randint(1, quotient_limit)
    texts = [str(number) for number in numbers]
    if category.parentheses and terms >= 3 and rng.random() < 0.5:
        start = rng.randrange(terms - 1)
        end = rng.randint(start + 1, min(terms - 1, start + terms - 2))  # never the whole
        texts[start], texts[end] = f"({texts[start]}", f"{texts[end]})"
    return texts[0] + "".join(f" {op} {text}" for op, text in zip(ops, texts[1:], strict=True))


def _random_literal(max_digits: int, rng: random.Random, min_digits: int = 1) -> int:
    digits = rng.randint(min_digits, max_digits)
    return rng.randint(max(1, 10 ** (digits - 1)), 10**digits - 1)


@register_domain("arithmetic")
class ArithmeticDomain(Domain):
    """Integer arithmetic questions with a safe `ast` oracle; see the module docstring.

    Options (a recipe's `domain.options`):
        categories: names of the built-in categories to use, in order (default: all).
        max_terms: cap on the number of literals in every category (default: none).
        require_tags: false also accepts a question written without <question> tags, taken
            from the first non-empty line (small models rarely use the tags).
        solver_template: the solver's prompt with `{question}` where the question goes
            (default: the base class's step-by-step request for a boxed answer).
        challenger_prompt: "examples" (instructions and the shown examples) or "partial": the
            first shown example with its last number blanked ("What is 5 * _?"), to complete.
    """

    def __init__(self, categories: Sequence[str] | None = None, max_terms: int | None = None,
                 require_tags: bool = True, solver_template: str | None = None,
                 challenger_prompt: str = "examples") -> None:
        if challenger_prompt not in CHALLENGER_PROMPTS:
            raise DomainOptionError("challenger_prompt", challenger_prompt, "not a known prompt",
                                    f"one of {', '.join(CHALLENGER_PROMPTS)}")
        self.prompt_style = challenger_prompt
        self.require_tags = require_tags
        self.template = None if solver_template is None else check_template("solver_template",
                                                                              solver_template)
        known = {category.name: category for category in CATEGORIES}
        names = list(categories) if categories is not None else list(known)
        unknown = [name for name in names if name not in known]
        if unknown or not names:
            raise ValueError(f"unknown arithmetic categories {unknown}; valid: {', '.join(known)}")
        self._categories = {name: _capped(known[name], max_terms) for name in names}

    def categories(self) -> tuple[str, ...]:
        return tuple(self._categories)

    def spec(self, category: str) -> ArithmeticCategory:
        """The definition of `category` (after the `max_terms` cap)."""
        self.check_category(category)
        return self._categories[category]

    def challenger_prompt(self, category: str, seeds: Sequence[Question] = ()) -> str:
        spec = self.spec(category)
        if self.prompt_style == "partial":
            if not seeds:
                raise ValueError("domain.options.challenger_prompt = 'partial' completes a shown example: "
                                 "set challenger.seeds_per_prompt to at least 1")
            return partial_prompt(spec, seeds[0].text)
        instructions = [
            f"Write ONE new arithmetic question about {spec.description}.",
            f"Use integers only, the operators {' '.join(sorted(spec.ops))}, "
            f"{_term_range(spec)} numbers, each with at most {spec.max_digits} digit(s).",
        ]
        return question_request(instructions, [seed.text for seed in seeds], "question")

    def solver_prompt(self, question: Question) -> str:
        if self.template is None:
            return super().solver_prompt(question)
        return self.template.replace("{question}", question.text)

    def parse_question(self, completion: str, category: str) -> str | None:
        """The normalised question ("What is 12 + 7 * 3?") if the block holds one of `category`.

        Uses the first non-empty <question> block (an unclosed one runs to the end); it must
        contain exactly one expression, of this category, whose value is an integer.
        """
        spec = self.spec(category)
        block = question_block(completion)
        if block is None and not self.require_tags:
            block = _first_line(completion)
        if block is None or len(block) > MAX_QUESTION_CHARS:
            return None
        expression = find_expression(block)
        if expression is None or expression.value is None or not spec.accepts(expression):
            return None
        return question_text(expression)

    def extract_answer(self, completion: str) -> str | None:
        """The canonical number given by the first source that has one: the last box, then the
        last "answer is …", then the last number in the completion."""
        for source in (last_boxed, answer_phrase, last_number):
            number = number_in(source(completion))
            if number is not None:
                return number
        return None

    def equivalent(self, a: str, b: str) -> bool:
        """Numeric equality; a string that is not a number matches nothing."""
        canonical = canonical_number(a)
        return canonical is not None and canonical == canonical_number(b)

    def oracle(self, question: Question) -> str | None:
        """The true integer answer of the question's expression, whatever its category."""
        return true_answer(question.text)

    def trivial(self, text: str) -> bool:
        """An operation by its identity or by itself somewhere in the question (trivial_expression)."""
        return trivial_expression(text)

    def generate(self, category: str, rng: random.Random) -> str:
        """A random question of `category`, as normalised text."""
        spec = self.spec(category)
        for _ in range(MAX_GENERATION_TRIES):
            expression = parse_expression(random_expression(spec, rng))
            if expression is not None and expression.value is not None and spec.accepts(expression):
                return question_text(expression)
        raise RuntimeError(f"no valid {category} question in {MAX_GENERATION_TRIES} tries: {spec}")

    def heldout(self, per_category: int, seed: int) -> list[Question]:
        """`per_category` distinct generated questions per category with oracle answers.

        Deterministic for a seed; each category draws from its own stream. Raises ValueError
        when a category has too few distinct questions (mul_small has 81).
        """
        questions = []
        for category in self.categories():
            questions.extend(self._generated(category, per_category, seed, "heldout"))
        return questions

    def seed_questions(self, category: str, n: int, seed: int) -> list[Question]:
        """`n` distinct generated questions of `category` to show the challenger as examples.

        Drawn from a different stream than `heldout` for the same seed.
        """
        return self._generated(category, n, seed, "seed")

    def _generated(self, category: str, n: int, seed: int, purpose: str) -> list[Question]:
        rng = random.Random(f"arithmetic/{purpose}/{seed}/{category}")
        return [
            Question(id=f"arithmetic/{purpose}/{seed}/{category}/{i}", category=category,
                     text=text, answer=true_answer(text), label_source="oracle")
            for i, text in enumerate(self._distinct(category, n, rng))
        ]

    def _distinct(self, category: str, count: int, rng: random.Random) -> list[str]:
        texts: dict[str, None] = {}  # insertion-ordered set
        for _ in range(100 * count):
            if len(texts) == count:
                break
            texts[self.generate(category, rng)] = None
        if len(texts) < count:
            raise ValueError(f"{category} gave only {len(texts)} distinct questions of {count}")
        return list(texts)


CHALLENGER_PROMPTS = ("examples", "partial")
_LAST_NUMBER = re.compile(r"(\d+)(\D*)$")


def partial_prompt(spec: ArithmeticCategory, example: str) -> str:
    """A question of the category to complete: `example` with its last number blanked.

    SmolLM2-135M copies a complete example it is shown (about 2 % of its questions were new,
    a third were copies), but fills a blank with a number of its own choice (about half new and
    valid at T 0.5; docs/results.md, "The challenger's prompt"). The blanked number is the last
    one; before a `/` the hint asks for a divisor of the number in front of it.
    """
    expression = find_expression(example)
    if expression is None:
        raise ValueError(f"{spec.name}: example {example!r} holds no arithmetic expression")
    blanked = _LAST_NUMBER.sub(lambda m: "_" + m.group(2), expression.text)
    before = blanked[:blanked.rindex("_")].rstrip()
    if before.endswith("/"):
        dividend = re.findall(r"\d+", before)[-1]
        hint = f"a number that divides {dividend} exactly"
    elif spec.max_digits == 1:
        hint = "a number from 1 to 9"
    else:
        hint = f"a number of at most {spec.max_digits} digits"
    return f"Complete the question with {hint}. Reply with the question only.\nWhat is {blanked}?"


def _first_line(completion: str) -> str | None:
    for line in completion.splitlines():
        if line.strip():
            return line.strip()
    return None


def _capped(category: ArithmeticCategory, max_terms: int | None) -> ArithmeticCategory:
    if max_terms is None:
        return category
    if max_terms < category.min_terms:
        raise ValueError(f"max_terms={max_terms} is below {category.name}'s minimum of "
                         f"{category.min_terms} terms")
    return dataclasses.replace(category, max_terms=min(category.max_terms, max_terms))


def _term_range(spec: ArithmeticCategory) -> str:
    if spec.min_terms == spec.max_terms:
        return str(spec.min_terms)
    return f"{spec.min_terms} to {spec.max_terms}"
