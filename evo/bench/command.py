"""`evo bench NAME`: run one benchmark, print its table, keep its raw results as JSON."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from evo.bench.efficiency import LANDSCAPES, bench_efficiency
from evo.bench.ensemble import bench_ensemble
from evo.bench.lineage_load import bench_lineage
from evo.bench.noise import bench_noise
from evo.bench.prewarm import bench_prewarm
from evo.bench.realistic import POLICIES, bench_realistic
from evo.bench.refusals import bench_refusals
from evo.bench.speedup import bench_speedup
from evo.bench.throughput import bench_overhead, bench_scale
from evo.bench.transfer import bench_transfer
from evo.bench.truth import REGIMES
from evo.errors import UsageError
from evo.shipped import default_target, preset_path
from evo.target import load_target
from evo.views.table import print_table


def main(args: argparse.Namespace) -> int:
    """`evo bench NAME`: run one benchmark, print its table, keep its raw results."""
    if args.evals is None:
        args.evals = 400 if args.name == "realistic" else 40
    for flag in ("seeds", "evals", "per_evaluator", "variants"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be at least 1")
    if args.budget < 0 or args.eval_seconds <= 0 or args.setup_seconds < 0:
        raise UsageError(
            "--budget must be >= 0 (0: the target's), --eval-seconds > 0, --setup-seconds >= 0"
        )
    if args.name == "overhead":
        results = bench_overhead(
            _numbers(args.evaluators, "--evaluators"),
            _numbers(args.islands or "1,4,16", "--islands"),
            _numbers(args.latency, "--latency", float),
            args.eval_seconds,
            args.per_evaluator,
            tuple(args.isolation.split(",")),
        )
    elif args.name == "scale":
        results = bench_scale(
            _numbers(args.islands or "4,16,64", "--islands"),
            _numbers(args.evaluations, "--evaluations"),
            evaluators=4,
        )
    elif args.name == "efficiency":
        landscapes = tuple(args.landscapes.split(","))
        unknown = sorted(set(landscapes) - set(LANDSCAPES))
        if unknown:
            raise UsageError(
                f"no landscape {unknown[0]!r}; --landscapes takes some of {','.join(LANDSCAPES)}"
            )
        presets = _presets(args.presets or "single-chain,adaptive")
        results = bench_efficiency(
            args.seeds, args.evals, presets, landscapes, args.target, args.budget
        )
    elif args.name == "realistic":
        regimes, policies = tuple(args.regimes.split(",")), tuple(args.policies.split(","))
        for given, known, flag in (
            (regimes, REGIMES, "--regimes"),
            (policies, POLICIES, "--policies"),
        ):
            unknown = sorted(set(given) - set(known))
            if unknown:
                raise UsageError(f"no {unknown[0]!r}; {flag} takes some of {','.join(known)}")
        results = bench_realistic(args.seeds, args.evals, regimes, policies)
    elif args.name == "refusals":
        results = bench_refusals(_numbers(args.islands or "4", "--islands")[0])
    elif args.name == "ensemble":
        results = bench_ensemble(args.seeds)
    elif args.name == "noise":
        if not args.sigma > 0:
            raise UsageError(f"--sigma must be > 0, not {args.sigma:g}")
        if not args.shared >= 0:
            raise UsageError(f"--shared must be >= 0, not {args.shared:g}")
        presets = _presets(args.presets or "adaptive")
        results = bench_noise(args.seeds, args.sigma, presets, shared=args.shared)
    elif args.name == "speedup":
        evaluators = _numbers(args.evaluators, "--evaluators")
        presets = _presets(args.presets or "adaptive")
        results = bench_speedup(evaluators, args.seeds, args.evals, args.eval_seconds, presets)
    elif args.name == "transfer":
        budgets = _numbers(args.budgets, "--budgets", float)
        if len(budgets) != 2 or budgets[0] >= budgets[1]:
            raise UsageError(
                f"--budgets takes a short and a longer budget, like 15,60; not {args.budgets}"
            )
        target = load_target(args.target or default_target())
        results = bench_transfer(target, (budgets[0], budgets[1]), args.variants)
    elif args.name == "prewarm":
        results = bench_prewarm(
            args.setup_seconds,
            args.eval_seconds,
            args.evals,
            args.target,
            args.budget,
            tuple(args.isolation.split(",")),
        )
    else:
        sizes = _numbers(args.rows, "--rows")
        if min(sizes) < 1:
            raise UsageError(f"--rows must be at least 1, not {args.rows}")
        results = bench_lineage(sizes)
    # Lists (per-seed curves and the like) go to the raw results only; some columns only some
    # rows report.
    columns = list(
        dict.fromkeys(k for r in results for k, v in r.items() if not isinstance(v, list))
    )
    print_table(columns, [tuple(r.get(k) for k in columns) for r in results])
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    machine = {"machine": platform.platform(), "cpus": os.cpu_count(), "date": time.strftime("%F")}
    path.write_text(json.dumps({**machine, "results": results}, indent=1))
    print(f"raw results: {path}")
    return 0


def _presets(text: str) -> tuple[str, ...]:
    presets = tuple(text.split(","))
    for preset in presets:
        preset_path(preset)  # a one-line error for a preset that does not exist
    return presets


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
