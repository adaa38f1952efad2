"""math-verify's equivalence check under a hard time limit, run in a persistent worker process.

math-verify (sympy underneath) can run for minutes, or forever, on some inputs, and its own
limit uses `signal.alarm`, which fails off the main thread (verl and Ray call reward code from
threads). In a worker process it runs on the main thread, and a check that exceeds `timeout_s`
gets the worker killed: the pair counts as a non-match and a fresh worker starts on the next
call. A check never hangs and never raises; answers are model text, so the worker's memory is
capped and answers that hang are remembered and never sent again (`TimedVerifier`).
"""

from __future__ import annotations

import logging
import multiprocessing
import resource
import threading
from collections import OrderedDict
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

logger = logging.getLogger(__name__)

CheckFn = Callable[[str, str], bool]  # must be picklable: a module-level function
_READY = "ready"
# Longer answers are not sent to math-verify (a final answer is a number or a short expression),
# nor any with a `$` inside: in "7$ and the answer is $x" math-verify would read a hidden formula.
MAX_ANSWER_CHARS = 300
# The worker's address space: a check that needs more fails, a non-match.
WORKER_MEMORY_BYTES = 4 << 30
# How many answers that timed out are remembered (each at most MAX_ANSWER_CHARS long).
MAX_REMEMBERED_TIMEOUTS = 10_000


def math_verify_check(a: str, b: str) -> bool:
    """math-verify's equivalence of two answers written as LaTeX or plain math, e.g. 1/2 ~ 0.5.

    Each side is wrapped in `$…$` so that bare LaTeX (`\\frac{1}{2}`) is parsed as math.
    `a` is math-verify's gold; callers that need symmetry order the pair themselves. Runs
    with math-verify's own (signal-based, 5 s) limits, so it must run on a main thread.
    TimedVerifier refuses answers with a `$` inside or over MAX_ANSWER_CHARS before this runs.
    """
    from math_verify import parse, verify

    return bool(verify(parse(f"${a}$"), parse(f"${b}$")))


def _serve(conn: Connection, check: CheckFn, memory_bytes: int | None = None) -> None:
    """The worker's loop: answer (a, b) requests with True/False, or ("error", text)."""
    if memory_bytes is not None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    check("1", "1")  # import and warm up before declaring ready
    conn.send(_READY)
    while True:
        try:
            request = conn.recv()
        except EOFError:  # the parent is gone
            return
        if request is None:
            return
        a, b = request
        try:
            conn.send(bool(check(a, b)))
        except Exception as error:  # noqa: BLE001 - any failure of the check is a non-match
            conn.send(("error", f"{type(error).__name__}: {error}"))


class TimedVerifier:
    """Calls `check(a, b)` in a worker process and gives False if it takes over `timeout_s`.

    Thread-safe (one request at a time). `timeouts` and `errors` count the pairs that were
    declared non-matches because the check timed out or failed.
    """

    def __init__(self, timeout_s: float, check: CheckFn = math_verify_check,
                 startup_timeout_s: float = 120.0, memory_bytes: int | None = WORKER_MEMORY_BYTES) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.timeout_s = timeout_s
        self.startup_timeout_s = startup_timeout_s
        self._check = check
        self._lock = threading.Lock()
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self.memory_bytes = memory_bytes
        # answers (and pairs) not to check again
        self._timed_out: OrderedDict[str | tuple[str, str], None] = OrderedDict()
        self.timeouts = 0
        self.errors = 0
        # pairs refused at once: an answer too long, with a `$` inside, or that timed out before
        self.skipped = 0

    def equivalent(self, a: str, b: str) -> bool:
        """`check(a, b)`, or False if it timed out, raised, the worker died, `a` or `b` is
        over MAX_ANSWER_CHARS or holds a `$`, or `a` or `b` hangs alone (or the pair hung
        together) in an earlier check."""
        with self._lock:
            if (max(len(a), len(b)) > MAX_ANSWER_CHARS or "$" in a or "$" in b
                    or a in self._timed_out or b in self._timed_out or (a, b) in self._timed_out):
                self.skipped += 1
                return False
            reply = self._ask(a, b)
            if reply is None:
                self._remember_timeout(a, b)
                return False
        if isinstance(reply, tuple):
            self.errors += 1
            logger.warning("equivalence check failed (%s) on %r vs %r", reply[1], a[:200], b[:200])
            return False
        return reply

    def _ask(self, a: str, b: str) -> bool | tuple[str, str] | None:
        """The worker's reply to (a, b), or None if it timed out; False if the worker died."""
        conn = self._worker()
        try:
            conn.send((a, b))
            if not conn.poll(self.timeout_s):
                self.timeouts += 1
                logger.warning("equivalence check timed out after %.1f s: %r vs %r",
                               self.timeout_s, a[:200], b[:200])
                self._stop(graceful=False)
                return None
            return conn.recv()
        except (EOFError, OSError) as error:
            self.errors += 1
            logger.warning("equivalence worker died (%s) on %r vs %r", error, a[:200], b[:200])
            self._stop(graceful=False)
            return False

    def _remember_timeout(self, a: str, b: str) -> None:
        """After (a, b) timed out: check each answer alone once; remember those that hang alone,
        or the pair itself if neither does (so an innocent partner of a hostile answer stays usable)."""
        if a == b:  # already checked alone
            hanging = [a]
        else:
            hanging = [answer for answer in (a, b) if self._ask(answer, answer) is None]
        for key in hanging or [(a, b)]:
            self._timed_out[key] = None
            self._timed_out.move_to_end(key)
        while len(self._timed_out) > MAX_REMEMBERED_TIMEOUTS:
            self._timed_out.popitem(last=False)

    def close(self) -> None:
        """Stop the worker; a later `equivalent` starts a new one."""
        with self._lock:
            self._stop()

    def __enter__(self) -> TimedVerifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _worker(self) -> Connection:
        """The live worker's connection, starting a worker first if there is none.

        'spawn' context: no inherited locks or CUDA state. The worker warms up with one check
        before it says it is ready, so importing sympy (~2 s) never counts against a time limit.
        """
        if self._process is not None and self._process.is_alive():
            assert self._conn is not None
            return self._conn
        self._stop()
        context = multiprocessing.get_context("spawn")
        parent_conn, child_conn = context.Pipe()
        process = context.Process(target=_serve, args=(child_conn, self._check, self.memory_bytes), daemon=True,
                                  name="coevolve-mathverify")
        process.start()
        child_conn.close()
        self._process, self._conn = process, parent_conn
        try:
            ready = parent_conn.poll(self.startup_timeout_s) and parent_conn.recv() == _READY
        except EOFError:  # the worker crashed while starting, e.g. math-verify is missing
            ready = False
        if not ready:
            self._stop(graceful=False)
            raise RuntimeError(
                f"equivalence worker did not start within {self.startup_timeout_s} s "
                f"(check={getattr(self._check, '__qualname__', self._check)})"
            )
        return parent_conn

    def _stop(self, graceful: bool = True) -> None:
        """Stop the worker (asking it to exit first if `graceful`, else killing it), forget it."""
        process, conn = self._process, self._conn
        self._process, self._conn = None, None
        if conn is not None:
            if graceful:
                try:
                    conn.send(None)
                except OSError:  # the pipe is already broken
                    pass
            conn.close()
        if process is not None:
            process.join(timeout=1.0 if graceful else 0)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
