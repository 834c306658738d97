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
fastest round's time, summed over the kinds. Rounds go on until the budget is spent (at least
MIN_ROUNDS, at most MAX_ROUNDS). The time includes passing the lists to the child and back
(about 2% of the seed program's), the same for every variant.
"""

import ctypes
import random
import secrets
import struct
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
DEFAULT_BUDGET_SECONDS = 10.0
PR_SET_DUMPABLE = 4

sys.path.insert(0, str(Path(__file__).parent))
from runner import read_lists, write_lists  # noqa: E402  (the wire format, not the variant)


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

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).parent / "runner.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def sort(self, lists: list[list[int]]) -> tuple[float, list[list[int]] | str]:
        """The seconds from sending `lists` to having the answers back, and the answers (or
        why there are none)."""
        tick = time.perf_counter()
        write_lists(self.process.stdin, lists)
        outputs = read_lists(self.process.stdout)
        elapsed = time.perf_counter() - tick
        if outputs is None:
            return elapsed, f"the sorting process ended (exit status {self.process.wait()})"
        if outputs == -1:  # the runner's refusal, and why
            (length,) = struct.unpack("<q", self.process.stdout.read(8))
            return elapsed, self.process.stdout.read(length).decode(errors="replace")
        if len(outputs) != len(lists):
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
    child = Child()
    try:
        measure(req, rng, child)
    finally:
        child.close()


def measure(req: protocol.Request, rng: random.Random, child: Child) -> None:
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
            best[kind] = min(best.get(kind, elapsed), elapsed)
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
