"""Fixed part of the sort target: inputs no variant can predict, the clock and the correctness
gate, in a process that never imports the mutable code.

evo runs `python bench.py` in a fresh working copy. It starts `runner.py` in a child process,
which imports the mutable `sort.py`, and times each request from here: the inputs written, the
outputs read back. Nothing the variant does in its own process (reassigning a clock, walking up
the stack to this file's variables, remembering inputs) reaches the clock or the check here. On
Linux this process is also undumpable, so a child of the same user cannot read or trace its
memory (at evo's namespace level no process has the capabilities that would override that).

Each round draws fresh input lists (random, sorted, reversed, few distinct values, many short
lists) from a seed drawn at start-up that the child never sees, so no variant can precompute an
answer, and checks every output against the right answer outside the timed region; a single
wrong output makes the variant invalid. The metric is runtime_ms: for each kind of input, the
fastest round's time, summed over the kinds, less what passing the lists to the child and back
costs (measured first through a child that only echoes them, before the variant's exists).
Rounds go on until the budget is spent (at least MIN_ROUNDS, at most MAX_ROUNDS).
"""

import ctypes
import random
import secrets
import subprocess
import sys
import time
from pathlib import Path

from evo.target import protocol

SIZE = 20_000
SHORT_LISTS = 200
SHORT_SIZE = 50
MIN_ROUNDS = 3
MAX_ROUNDS = 20
TRANSFER_ROUNDS = 5
DEFAULT_BUDGET_SECONDS = 10.0
PR_SET_DUMPABLE = 4

sys.path.insert(0, str(Path(__file__).parent))
from runner import pack, receive, send, unpack  # noqa: E402  (the wire format, not the variant)


def round_inputs(rng: random.Random) -> dict[str, list[list[int]]]:
    def values(count: int, bound: int = 2**31) -> list[int]:
        return [rng.randrange(-bound, bound) for _ in range(count)]

    return {
        "random": [values(SIZE)],
        "sorted": [sorted(values(SIZE))],
        "reversed": [sorted(values(SIZE), reverse=True)],
        "few-distinct": [[rng.randrange(10) for _ in range(SIZE)]],
        "short-lists": [
            [rng.randrange(1000) for _ in range(SHORT_SIZE)] for _ in range(SHORT_LISTS)
        ],
    }


def check(kind: str, given: list[int], got: list[int]) -> str | None:
    """Why `got` is not `given` sorted, or None when it is."""
    expected = sorted(given)
    if got != expected:
        if len(got) != len(expected):
            return f"{kind}: returned {len(got)} values for {len(expected)} inputs"
        index = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
        return f"{kind}: wrong value at index {index}: {got[index]} instead of {expected[index]}"
    return None


class Child:
    """runner.py in a process of its own: the variant's side."""

    def __init__(self, echo: bool = False) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).parent / "runner.py"), *(["--echo"] * echo)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.ready = receive(self.process.stdout) is not None  # sort.py imported, or failed to

    def sort(self, lists: list[list[int]]) -> tuple[float, list[list[int]] | str]:
        """The seconds from sending `lists` to having every answer back (packing them is done
        before, reading them after), and the answers (or why there are none)."""
        payload = pack(lists)
        tick = time.perf_counter()
        send(self.process.stdin, payload)
        answer = receive(self.process.stdout)
        elapsed = time.perf_counter() - tick
        if answer is None:
            return elapsed, f"the sorting process ended (exit status {self.process.wait()})"
        outputs = unpack(answer)
        if not isinstance(outputs, str) and len(outputs) != len(lists):
            return elapsed, f"{len(outputs)} answers for {len(lists)} lists"
        return elapsed, outputs

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


def undumpable() -> None:
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def main() -> None:
    req = protocol.request(DEFAULT_BUDGET_SECONDS)
    undumpable()
    rng = random.Random(secrets.randbits(64))  # before the child starts; it never sees it
    transfer = transfer_seconds(rng)  # before the variant's child exists: it cannot slow it
    child = Child()
    try:
        if not child.ready:
            protocol.report_invalid(
                req, f"sort.py could not be imported (exit status {child.process.wait()})"
            )
            return
        measure(req, rng, child, transfer)
    finally:
        child.close()


def transfer_seconds(rng: random.Random) -> dict[str, float]:
    """For each kind of input, the fastest of TRANSFER_ROUNDS round trips through a child that
    only echoes the lists: what passing them to the variant and back costs, left out of its
    time."""
    echo, fastest = Child(echo=True), {}
    try:
        for _ in range(TRANSFER_ROUNDS):
            for kind, lists in round_inputs(rng).items():
                elapsed, _ = echo.sort(lists)
                fastest[kind] = min(fastest.get(kind, elapsed), elapsed)
    finally:
        echo.close()
    return fastest


def measure(
    req: protocol.Request, rng: random.Random, child: Child, transfer: dict[str, float]
) -> None:
    best: dict[str, float] = {}
    started = time.perf_counter()
    rounds = 0
    while rounds < MIN_ROUNDS or (
        rounds < MAX_ROUNDS and time.perf_counter() - started < req.budget_seconds
    ):
        for kind, lists in round_inputs(rng).items():
            elapsed, outputs = child.sort(lists)
            if isinstance(outputs, str):
                protocol.report_invalid(req, f"wrong output on round {rounds}: {kind}: {outputs}")
                return
            for values, output in zip(lists, outputs, strict=True):
                problem = check(kind, values, output)
                if problem:
                    protocol.report_invalid(req, f"wrong output on round {rounds}: {problem}")
                    return
            best[kind] = min(best.get(kind, elapsed), max(0.0, elapsed - transfer[kind]))
        rounds += 1
    protocol.report(
        req,
        1000 * sum(best.values()),
        train_seconds=round(time.perf_counter() - started, 3),
        rounds=rounds,
        **{f"{kind}_ms": round(1000 * seconds, 3) for kind, seconds in best.items()},
    )


if __name__ == "__main__":
    main()
