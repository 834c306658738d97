"""`evo confirm RUN`: the run's best programs measured again, on seeds the search never used.

What a search reports of its best is optimistic: the best was picked among hundreds partly for
its luck on the seeds it was measured on (the winner's curse), and it was measured at the
search's budget only. A confirmation evaluates the seed program and the `top` best programs the
run crowned or kept (by search fitness, one per distinct program) `seeds` times each, on fresh
seeds (evaluation index CONFIRM_INDEX + i of the run's seeds: the same for every program, so that
each one's gain over the seed program is paired), at the run's budget or another one (does a gain
found at 20 s hold at 300 s?). evo.views.confirmation turns the rows into gains with intervals.

Rows. Each evaluation is a lineage row of kind "confirmation" (its budget in its eval_details),
in runs/<id>/confirmations/ beside the search's lineage/ (a resumed search discards lineage parts
written after its last checkpoint; these it never touches). A row is written as its evaluation
comes back, so a confirmation killed midway and started again evaluates only what is missing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from evo.config import RunConfig
from evo.errors import UsageError
from evo.evaluate.allowance import Allowance
from evo.evaluate.result import EvalResult
from evo.evaluate.sandbox import evaluate
from evo.run.evaluators import EvaluatorPool, connect_ray
from evo.search.candidate import Candidate, Child, EvalRequest, Evaluation, budget_of
from evo.status import Event, Status
from evo.store import checkpoint
from evo.store.lineage import (
    CONFIRMATIONS,
    LineageWriter,
    candidate_row,
    lineage_metric,
    part_files,
    read_lineage,
    readable_parts,
)
from evo.target import load_target

KEPT = (Status.ACCEPTED, Status.KEPT)  # the programs a confirmation chooses from
CONFIRM_INDEX = 500  # past every evaluation index a search uses (its repeats, its screens: -1)


def chosen(run_dir: Path, top: int, minimize: bool) -> list[dict]:
    """The seed program's lineage row, then those of the run's `top` best programs by search
    fitness among those it crowned or kept."""
    table = read_lineage(run_dir / "lineage")
    table = table.filter(pc.equal(table["event"], Event.CANDIDATE.value))
    rows = [r for r in table.to_pylist() if r["fitness"] is not None]
    seed = next((r for r in rows if r["candidate_id"] == 0), None)
    if seed is None:
        raise UsageError(f"{run_dir} has not measured its seed program yet; nothing to confirm")
    members = sorted(
        (r for r in rows if r["status"] in KEPT and r["candidate_id"] != 0),
        key=lambda r: r["fitness"] if minimize else -r["fitness"],
    )
    picked, hashes = [], {seed["code_hash"]}
    for row in members:
        if row["code_hash"] not in hashes and len(picked) < top:
            picked.append(row)
            hashes.add(row["code_hash"])
    return [seed, *picked]


def confirm(
    run_dir: Path,
    config: RunConfig,
    top: int = 3,
    seeds: int = 3,
    budget: float | None = None,
    pool: EvaluatorPool | None = None,
    sandbox: Callable[..., EvalResult] = evaluate,
) -> int:
    """Evaluate what is missing of the confirmation of the run in `run_dir`, started with
    `config` (`top` programs, `seeds` fresh seeds each, at `budget` seconds, by default the
    run's); returns the evaluations it ran. `pool`: the finished run's evaluators, else new
    ones."""
    import ray

    if top < 1 or seeds < 1:
        raise UsageError("--top and --seeds take numbers of at least 1")
    if budget is not None and not budget > 0:
        raise UsageError(f"--budget must be a number of seconds > 0, not {budget:g}")
    if not Path(config.target).is_dir():
        raise UsageError(
            f"the run's target folder {config.target} is gone; a confirmation evaluates its "
            "programs there: put it back (or edit target in the run's config.toml)"
        )
    target = load_target(config.target)
    budget = budget or config.evaluation.budget or target.budget_seconds
    metric = lineage_metric(readable_parts(run_dir / "lineage"))
    programs = chosen(run_dir, top, metric.minimize)
    done = recorded(run_dir, budget)
    todo = [
        (row, config.seed * 1000 + CONFIRM_INDEX + i)
        for i in range(seeds)
        for row in programs
        if (row["candidate_id"], config.seed * 1000 + CONFIRM_INDEX + i) not in done
    ]
    total = len(programs) * seeds
    print(
        f"confirming the seed program and the best {len(programs) - 1} on {seeds} fresh seeds "
        f"at {budget:g} s, {total} evaluations: {len(todo)} to run, {total - len(todo)} done before"
    )
    if not todo:
        return 0
    # The run's measured limits for its variants; the seed program is trusted with the step it
    # reports, as in the run (evo.evaluate.allowance)
    saved = (checkpoint.load(run_dir, any_version=True) or {}).get("allowance")
    limits = Allowance.saved(saved) or Allowance.unmeasured(target)
    writer = LineageWriter(run_dir / CONFIRMATIONS, metric)
    writer.parts = len(part_files(writer.folder))  # numbered from 1, never removed
    if pool is None:
        connect_ray(config.address)
        pool = EvaluatorPool(ray, target, config.evaluation, sandbox)
    running: dict[Any, tuple[int, dict, int, float]] = {}
    count = 0
    while todo or running:
        while pool.idle and todo:
            row, seed = todo.pop(0)
            allowance = None if row["candidate_id"] == 0 else limits
            request = EvalRequest(json.loads(row["sources"]), seed, budget, allowance)
            ref, slot = pool.submit(request)
            running[ref] = (slot, row, seed, time.time())
        ready, _ = ray.wait([*running, *pool.recovering], num_returns=1, timeout=1.0)
        for ref in ready:
            if ref in pool.recovering:
                pool.recovered(ref)
                continue
            slot, row, seed, sent = running.pop(ref)
            try:
                evaluation = ray.get(ref)
            except ray.exceptions.RayActorError as e:  # the evaluator died: again, elsewhere
                pool.lost(slot, f"{type(e).__name__}; confirmation of {row['candidate_id']}")
                todo.insert(0, (row, seed))
                continue
            pool.release(slot)
            index = seed - config.seed * 1000  # CONFIRM_INDEX + i, as a search's are k
            evaluation = replace(evaluation, index=index, dispatched=sent, returned=time.time())
            writer.add(confirmation_row(writer.run_id, row, evaluation))
            writer.flush()  # each one on disk before the next: nothing is lost or run twice
            count += 1
            result = evaluation.result
            value = f"{result.metric:.4f}" if result.status == Status.OK else result.status
            print(f"  #{row['candidate_id']} seed {seed}: {value}", flush=True)
    return count


def confirmation_row(run_id: str, row: dict, evaluation: Evaluation) -> dict:
    """The lineage row of one confirmation evaluation of the program of lineage row `row`."""
    child = Child(
        row["island"], row["parent_id"], row["generation"], row["operator"], row["model"],
        row["hypothesis"], row["edit"], json.loads(row["sources"]), mate_id=row["mate_id"],
    )  # fmt: skip
    candidate = Candidate(row["candidate_id"], child, evaluation.dispatched, [evaluation])
    status = Status(evaluation.result.status)
    reason = f"confirmation at {evaluation.result.budget_seconds:g} s"
    return candidate_row(run_id, candidate, status, reason) | {"event": Event.CONFIRMATION}


def recorded(run_dir: Path, budget: float) -> set[tuple[int, int]]:
    """(program, seed) of every confirmation evaluation on record at `budget` seconds."""
    columns = ["candidate_id", "seeds", "eval_details"]
    return {
        (r["candidate_id"], r["seeds"][0])
        for r in read_lineage(run_dir / CONFIRMATIONS, columns).to_pylist()
        if round(budget_of(json.loads(r["eval_details"][0])), 3) == round(budget, 3)
    }
