"""`evo bench lineage`: a synthetic lineage of N rows (default 1,000,000) in a run folder, then
`evo lineage` and `evo report` on it as separate processes, each timed, with its peak resident
memory read the way the sandbox reads an evaluation's; then the report's page opened in headless
Chromium (evo.bench.browser), LOADS times, each in a fresh browser: its size and the median time
until every plot is drawn."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from evo.evaluate.process import run_process
from evo.evaluate.result import EvalResult
from evo.mutate.proposal import Usage
from evo.search.candidate import Candidate, Child, Evaluation
from evo.status import Status
from evo.store.lineage import LineageWriter, Metric, candidate_row, utc

STATUSES = np.array(
    [
        Status.ACCEPTED,
        Status.KEPT,
        Status.REJECTED,
        Status.CRASH,
        Status.INVALID,
        Status.TIMEOUT,
        Status.REFUSED,
    ]
)
FAILURES = [Status.CRASH, Status.INVALID, Status.TIMEOUT]
LOADS = 3
STATUS_SHARE = [0.03, 0.35, 0.42, 0.06, 0.04, 0.02, 0.08]


def synthetic_lineage(
    folder: Path, rows: int, islands: int = 64, seed: int = 0, per_file: int = 100_000
) -> None:
    """A run folder whose lineage has `rows` candidates that look like a long run's, written as
    the engine writes them.

    Statuses in proportions seen in real runs, 1-3 evaluations each (one failing evaluation for a
    crash, invalid or timeout; none for a refusal), parents among earlier accepted candidates, a
    metric that improves with noise, and a short source per candidate.
    """
    rng = np.random.default_rng(seed)
    status = rng.choice(STATUSES, size=rows, p=STATUS_SHARE)
    status[0] = Status.ACCEPTED
    evals = np.where(status == Status.REFUSED, 0, rng.integers(1, 4, size=rows))
    evals = np.where(np.isin(status, FAILURES), 1, evals)
    trend = 3.3 - 1.2 * np.arange(rows) / rows
    accepted = np.flatnonzero(status == Status.ACCEPTED)
    latest = np.searchsorted(accepted, np.arange(rows)) - 1  # accepted before each candidate
    parents = accepted[np.maximum(0, latest - rng.integers(0, 3, rows))]
    costs = rng.uniform(0.005, 0.03, rows)
    start = time.time() - rows * 0.05
    writer = LineageWriter(folder / "lineage", Metric("val_bpb", minimize=True))
    for i in range(rows):
        fate = Status(status[i])
        child = Child(
            island=i % islands,
            parent_id=None if i == 0 else int(parents[i]),
            generation=i // islands,
            operator="offline",
            model=None,
            hypothesis=f"KNOB_{i % 23} x2: a hypothesis",
            edit=f"train.py: replace definition of KNOB_{i % 23}",
            sources={"train.py": f"KNOB_{i % 23} = {i}\n"},
            usage=Usage(cost_usd=float(costs[i])),
        )
        created = start + 0.05 * i
        candidate = Candidate(i, child, created)
        for k, value in enumerate(trend[i] + rng.normal(0, 0.03, evals[i])):
            failed = fate in FAILURES
            result = EvalResult(
                status=fate if failed else Status.OK,
                metric_name="val_bpb",
                metric=None if failed else float(value),
                seed=k,
                device="cuda",
                budget_seconds=60.0,
                train_seconds=60.0,
                wall_seconds=60.0,
                peak_rss_mb=None,
            )
            when = created + 60.0 * k
            evaluation = Evaluation(result, f"evaluator-{i % 8}", "node", "host", "0", 0)
            candidate.evaluations.append(
                replace(evaluation, index=k, dispatched=when, returned=when + 60.0)
            )
        row = candidate_row(folder.name, candidate, fate, "")
        writer.add(row | {"finished_at": utc(created + 60.0 * max(1, evals[i]))})
        if (i + 1) % per_file == 0:
            writer.flush()
    writer.flush()


def bench_lineage(sizes: list[int]) -> list[dict]:
    return [result for rows in sizes for result in _bench_size(rows)]


def _bench_size(rows: int) -> list[dict]:
    results = []
    with tempfile.TemporaryDirectory(prefix="evo-bench-") as scratch:
        run = Path(scratch) / "bench-run"
        started = time.monotonic()
        synthetic_lineage(run, rows)
        size = sum(p.stat().st_size for p in (run / "lineage").iterdir())
        took = time.monotonic() - started
        print(f"generated {rows:,} rows ({size / 2**20:.0f} MiB) in {took:.1f} s", flush=True)
        env = dict(os.environ)
        for name, args in (
            ("evo lineage", ["lineage", str(run)]),
            ("evo report", ["report", str(run)]),
        ):
            tick = time.monotonic()
            ended = run_process(
                (sys.executable, "-m", "evo", *args), Path(scratch), env, Path(scratch), timeout=600
            )
            code, peak = ended.exit_code, ended.peak_rss_mb
            seconds = time.monotonic() - tick
            if code != 0:
                raise SystemExit(
                    f"{name} failed: {(Path(scratch) / 'stderr.log').read_text()[-500:]}"
                )
            results.append(
                {
                    "command": name,
                    "rows": rows,
                    "seconds": round(seconds, 2),
                    "peak_rss_mib": round(peak or 0),
                    "lineage_mib": round(size / 2**20),
                }
            )
        results[-1] |= page_load(run / "report" / "report.html")
    return results


def page_load(page: Path) -> dict[str, float]:
    """The page's size and the median milliseconds, over LOADS fresh browsers, from navigation
    to every plot drawn."""
    from evo.bench.browser import Browser

    times = []
    for _ in range(LOADS):
        with Browser() as browser:
            times.append(browser.open(page.as_uri()))
            if browser.errors():
                raise SystemExit(f"the page had console errors: {browser.errors()}")
    return {
        "page_mib": round(page.stat().st_size / 2**20, 1),
        "load_ms": round(statistics.median(times)),
    }
