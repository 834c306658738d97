"""Fixed part of the sort target: fixed inputs, a correctness gate, and the runtime metric.

evo runs `python bench.py` in a fresh working copy. Each round draws a fresh set of input lists
(random, sorted, reversed, few distinct values, many short lists) from a fixed seed sequence, so
every variant sees exactly the same inputs and no variant can profit from remembering an earlier
answer. Every output of every round is checked against the right answer outside the timed region;
a single wrong output makes the variant invalid. The metric is runtime_ms: for each kind of input,
the fastest round's time, summed over the kinds. Rounds go on until the budget is spent (at least
MIN_ROUNDS, at most MAX_ROUNDS).
"""

import random
import time

from evo.target import protocol

SIZE = 20_000
SHORT_LISTS = 200
SHORT_SIZE = 50
MIN_ROUNDS = 3
MAX_ROUNDS = 20
INPUT_SEED = 12345  # fixed: the inputs are part of the benchmark, not of the evaluation's seed
DEFAULT_BUDGET_SECONDS = 10.0


def round_inputs(round_index: int) -> dict[str, list[list[int]]]:
    rng = random.Random(INPUT_SEED + round_index)
    randoms = [rng.randrange(-(2**31), 2**31) for _ in range(SIZE)]
    return {
        "random": [randoms],
        "sorted": [sorted(randoms)],
        "reversed": [sorted(randoms, reverse=True)],
        "few-distinct": [[rng.randrange(10) for _ in range(SIZE)]],
        "short-lists": [
            [rng.randrange(1000) for _ in range(SHORT_SIZE)] for _ in range(SHORT_LISTS)
        ],
    }


def check(kind: str, given: list[int], got: object) -> str | None:
    """Why `got` is not `given` sorted, or None when it is."""
    expected = sorted(given)
    if not isinstance(got, list):
        return f"{kind}: sort_ints returned {type(got).__name__}, not a list"
    if got != expected:
        if len(got) != len(expected):
            return f"{kind}: returned {len(got)} values for {len(expected)} inputs"
        index = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
        return f"{kind}: wrong value at index {index}: {got[index]} instead of {expected[index]}"
    return None


def main() -> None:
    req = protocol.request(DEFAULT_BUDGET_SECONDS)
    import sort  # the mutable part, imported only after request() has hidden the channel

    best: dict[str, float] = {}
    started = time.perf_counter()
    rounds = 0
    while rounds < MIN_ROUNDS or (
        rounds < MAX_ROUNDS and time.perf_counter() - started < req.budget_seconds
    ):
        for kind, lists in round_inputs(rounds).items():
            copies = [list(values) for values in lists]
            tick = time.perf_counter()
            outputs = [sort.sort_ints(values) for values in copies]
            elapsed = time.perf_counter() - tick
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
