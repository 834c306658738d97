"""`evo bench`: measurements of evo itself, printed as a table and kept as JSON.

overhead and scale: the engine's own cost (evo.bench.throughput).
efficiency: the single-chain preset against the 4-island ring (or other presets), the same
number of evaluations, the offline operator, several seeds each; by default on the rugged knob
target (evo.bench.synthetic).
lineage: a synthetic lineage of N rows (default 1,000,000) in a run folder, then `evo lineage`
and `evo report` on it as separate processes, each timed, with its peak resident memory read the
way the sandbox reads an evaluation's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from evo.bench.synthetic import write_knob_target
from evo.bench.throughput import bench_overhead, bench_scale, local_ray
from evo.config import RunConfig, preset_path, read_toml
from evo.errors import UsageError
from evo.evaluate.sandbox import run_process
from evo.store.lineage import SCHEMA
from evo.views.table import print_table

ROOT = Path(__file__).resolve().parent.parent.parent
STATUSES = np.array(["accepted", "kept", "rejected", "crash", "invalid", "timeout", "refused"])
STATUS_SHARE = [0.03, 0.35, 0.42, 0.06, 0.04, 0.02, 0.08]


def synthetic_lineage(
    folder: Path, rows: int, islands: int = 64, seed: int = 0, per_file: int = 100_000
) -> None:
    """A run folder whose lineage has `rows` candidates that look like a long run's.

    Statuses in proportions seen in real runs, 1-3 evaluations each, parents among earlier
    accepted candidates, a metric that improves with noise, and a short source per candidate.
    """
    rng = np.random.default_rng(seed)
    (folder / "lineage").mkdir(parents=True, exist_ok=True)
    target = ROOT / "tests" / "fixtures" / "quad"
    (folder / "config.toml").write_text(RunConfig(target=str(target), islands=islands).to_toml())
    status = rng.choice(STATUSES, size=rows, p=STATUS_SHARE)
    status[0] = "accepted"
    evals = np.where(status == "refused", 0, rng.integers(1, 4, size=rows))
    trend = 3.3 - 1.2 * np.arange(rows) / rows
    accepted = np.flatnonzero(status == "accepted")
    latest = np.searchsorted(accepted, np.arange(rows)) - 1  # accepted before each candidate
    parents = accepted[np.maximum(0, latest - rng.integers(0, 3, rows))]
    start_ms = int((time.time() - rows * 0.05) * 1000)
    for part, low in enumerate(range(0, rows, per_file), 1):
        ids = range(low, min(rows, low + per_file))
        metrics = [list(trend[i] + rng.normal(0, 0.03, evals[i])) for i in ids]
        created = [start_ms + 50 * i for i in ids]
        columns = {
            "schema_version": [1] * len(ids),
            "run_id": [folder.name] * len(ids),
            "event": ["candidate"] * len(ids),
            "candidate_id": list(ids),
            "parent_id": [None if i == 0 else int(parents[i]) for i in ids],
            "island": [i % islands for i in ids],
            "generation": [i // islands for i in ids],
            "operator": ["offline"] * len(ids),
            "hypothesis": [f"KNOB_{i % 23} x2: a hypothesis" for i in ids],
            "edit": [f"train.py: replace definition of KNOB_{i % 23}" for i in ids],
            "sources": [json.dumps({"train.py": f"KNOB_{i % 23} = {i}\n"}) for i in ids],
            "status": status[low : low + len(ids)].tolist(),
            "metrics": metrics,
            "seeds": [list(range(len(m))) for m in metrics],
            "eval_statuses": [["ok"] * len(m) for m in metrics],
            "fitness": [float(np.mean(m)) if m else None for m in metrics],
            "accepted": (status[low : low + len(ids)] == "accepted").tolist(),
            "evaluator": [f"evaluator-{i % 8}" for i in ids],
            "evaluation_s": [60.0 * len(m) for m in metrics],
            "cost_usd": rng.uniform(0.005, 0.03, len(ids)).tolist(),
            "created_at": created,
            "finished_at": [t + 60_000 for t in created],
        }
        table = pa.table(
            {
                name: pa.array(columns[name], SCHEMA.field(name).type)
                if name in columns
                else pa.nulls(len(ids), SCHEMA.field(name).type)
                for name in SCHEMA.names
            },
            schema=SCHEMA,
        )
        pq.write_table(table, folder / "lineage" / f"part-{part:06d}.parquet")


def bench_lineage(rows: int) -> list[dict]:
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
            code, _, peak = run_process(
                (sys.executable, "-m", "evo", *args), ROOT, env, Path(scratch), timeout=600
            )
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
    return results


def bench_efficiency(
    seeds: int,
    evals: int,
    target_dir: Path,
    budget: float = 0.0,
    presets: tuple[str, ...] = ("single-chain", "ring"),
) -> list[dict]:
    """Presets against each other: same evaluations, the offline operator, several seeds.

    For each run: the best fitness after every evaluation. Reported per preset: the final best
    (median and range over seeds) and how many evaluations each run needed to reach the median
    final best of the first preset, the reference (by default the single chain).
    """
    from evo.run.engine import Engine
    from evo.target import load_target

    target = load_target(target_dir)
    sign = 1.0 if target.direction == "minimize" else -1.0
    curves: dict[str, list[np.ndarray]] = {}
    with local_ray(), tempfile.TemporaryDirectory(prefix="evo-bench-") as scratch:
        for preset in presets:
            for seed in range(seeds):
                settings = read_toml(preset_path(preset)) | {
                    "target": str(target.root),
                    "operator": "offline",
                    "seed": seed,
                    "max_evals": evals,
                    "budget": float(budget),
                    "out": scratch,
                }
                config = RunConfig().with_overrides(settings, preset)
                run_dir = Path(scratch) / f"{preset}-{seed}"
                run_dir.mkdir()
                engine = Engine(config, target, run_dir)
                engine.start(None)
                engine.run()
                curves.setdefault(preset, []).append(sign * _best_curve(run_dir, evals, sign))
    goal = float(np.median([c[-1] for c in curves[presets[0]]]))
    results = []
    for preset, runs in curves.items():
        finals = [float(c[-1]) for c in runs]
        reached = [
            int(np.argmax(sign * c <= sign * goal)) + 1 if (sign * c <= sign * goal).any() else None
            for c in runs
        ]
        hits = [r for r in reached if r is not None]
        results.append(
            {
                "preset": preset,
                "seeds": seeds,
                "evaluations": evals,
                "final_best_median": round(float(np.median(finals)), 4),
                "final_best_min": round(min(finals), 4),
                "final_best_max": round(max(finals), 4),
                "reached_reference_best": f"{len(hits)}/{len(runs)}",
                "evals_to_reference_best": int(np.median(hits)) if hits else None,
                "best_after_each_evaluation": [[round(float(v), 4) for v in c] for c in runs],
            }
        )
    return results


def _best_curve(run_dir: Path, evals: int, sign: float) -> np.ndarray:
    """The best accepted fitness (times sign: lower is better) after each evaluation."""
    from evo.store.lineage import read_lineage

    rows = [
        r
        for r in read_lineage(run_dir / "lineage").to_pylist()
        if r["event"] == "candidate" and r["metrics"]
    ]
    rows.sort(key=lambda r: r["finished_at"])
    curve = np.full(evals, np.inf)
    done, best = 0, np.inf
    for row in rows:
        done += len(row["metrics"])
        if row["accepted"]:
            best = min(best, sign * row["fitness"])
        curve[min(done, evals) - 1 :] = best
    return curve


def main(args: argparse.Namespace) -> int:
    """`evo bench NAME`: run one benchmark, print its table, keep its raw results."""
    for flag in ("rows", "seeds", "evals", "per_evaluator"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be at least 1")
    if args.budget < 0 or args.eval_seconds <= 0:
        raise UsageError("--budget must be >= 0 (0: the target's) and --eval-seconds > 0")
    if args.name == "overhead":
        results = bench_overhead(
            _numbers(args.evaluators, "--evaluators"),
            _numbers(args.islands or "1,4,16", "--islands"),
            _numbers(args.latency, "--latency", float),
            args.eval_seconds,
            args.per_evaluator,
        )
    elif args.name == "scale":
        results = bench_scale(
            _numbers(args.islands or "4,16,64", "--islands"),
            _numbers(args.evaluations, "--evaluations"),
            evaluators=4,
        )
    elif args.name == "efficiency":
        with tempfile.TemporaryDirectory(prefix="evo-bench-") as scratch:
            target = args.target or write_knob_target(
                Path(scratch) / "rugged", knobs=4, seconds=0.1, ruggedness=10.0
            )
            presets = tuple(args.presets.split(","))
            for preset in presets:
                preset_path(preset)  # a one-line error for a preset that does not exist
            results = bench_efficiency(args.seeds, args.evals, target, args.budget, presets)
    else:
        results = bench_lineage(args.rows)
    # Lists (per-seed curves and the like) go to the raw results only.
    columns = [k for k, v in results[0].items() if not isinstance(v, list)]
    print_table(columns, [tuple(r[k] for k in columns) for r in results])
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    machine = {"machine": platform.platform(), "cpus": os.cpu_count(), "date": time.strftime("%F")}
    path.write_text(json.dumps({**machine, "results": results}, indent=1))
    print(f"raw results: {path}")
    return 0


def _numbers(text: str, flag: str, kind: type = int) -> list:
    try:
        values = [kind(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(
            f"{flag} takes comma-separated numbers, like 1,2,4; not {text!r}"
        ) from None
    if min(values) <= 0:
        raise UsageError(f"{flag} takes numbers above 0, not {text!r}")
    return values
