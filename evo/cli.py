"""`python -m evo`: the command line. The parser is here; what each command does is in
evo.commands. The flags of `evo run` (and the LLM flags of `evo propose`) are generated from the
settings' declarations in evo.config, with their documented defaults."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import Field
from pathlib import Path

import evo
from evo import commands
from evo.config import SETTINGS
from evo.errors import UsageError
from evo.evaluate.allowance import STEP_FACTOR, TIMEOUT_FACTOR, TIMEOUT_FLOOR


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error that says where to look, instead of a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message}; see `python -m {self.prog} --help`")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="evo", description=evo.__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    ev = sub.add_parser(
        "eval",
        help="evaluate one variant of a target once",
        description="Evaluate one variant of a target in a fresh, killable subprocess and print "
        "a one-line result.",
    )
    _add_variant_arguments(ev)
    ev.add_argument("--budget", type=float, help="training budget in seconds (default: target's)")
    ev.add_argument("--timeout", type=float, help="hard timeout in seconds (default: target's)")
    ev.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    ev.add_argument("--json", action="store_true", help="print the whole result record as JSON")
    for name in ("isolation", "memory_gb"):
        _add_setting(ev, name, SETTINGS[name][1], with_defaults=True)
    ev.set_defaults(handler=commands.evaluate)

    pr = sub.add_parser(
        "propose",
        help="propose one validated child of a variant",
        description="Ask a mutation operator for one hypothesis and edit, validate the child, "
        "and print the hypothesis and its unified diff (or every rejection reason; exit 1).",
    )
    _add_variant_arguments(pr)
    for name, (section, spec) in SETTINGS.items():
        if section == "llm" and name != "adaptive_models":  # learnt over a run, not one call
            _add_setting(pr, name, spec, with_defaults=True)
    pr.set_defaults(handler=commands.propose)

    rn = sub.add_parser(
        "run",
        help="run the evolutionary search (islands, evaluators, lineage, checkpoints)",
        description="Run evo: islands of programs evolve by proposals and evaluations until a "
        "stop condition. Settings come from the defaults, then --preset, then --config, then "
        "these options; the effective configuration is saved in the run folder.",
        epilog=f"Limits that follow the seed program, as the run measures it: an evaluation is "
        f"killed at {TIMEOUT_FACTOR:g} x the seed program's slowest evaluation (at least the "
        f"budget + {TIMEOUT_FLOOR:g} s, never past the target's timeout_seconds), and its "
        f"training may end one step past the budget (up to {STEP_FACTOR:g} x the seed's "
        "longest step) and max(2 s, 5% of the budget) besides. evo lineage shows both.",
    )
    for name, (_, spec) in SETTINGS.items():
        _add_setting(rn, name, spec, with_defaults=False)
    rn.add_argument("--preset", help="island preset: ring, explore, single-chain or a .toml file")
    rn.add_argument("--config", type=Path, help="a TOML file of settings")
    rn.add_argument("--resume", type=Path, metavar="DIR", help="go on with the run in DIR")
    rn.add_argument(
        "--report", action="store_true", help="keep RUN/report/report.html up to date as it goes"
    )
    rn.set_defaults(handler=commands.run)

    li = sub.add_parser(
        "lineage",
        help="what was tried, what won, why: a summary of one or more runs",
        description="Summarise runs from their Parquet lineage, filter candidates, follow an "
        "ancestry, or run DuckDB SQL over the table `lineage`.",
    )
    li.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run folders (runs/*)")
    li.add_argument("--island", type=int, help="list the candidates of this island")
    li.add_argument("--status", help="list the candidates with this status")
    li.add_argument("--operator", help="list the candidates of this operator")
    li.add_argument("--ancestry", type=int, metavar="ID", help="the chain of ancestors of ID")
    li.add_argument("--sql", help='DuckDB SQL over the table lineage, e.g. "SELECT ..."')
    li.set_defaults(handler=commands.lineage)

    sh = sub.add_parser("show", help="one candidate: source, diff, evaluations, verdict")
    sh.add_argument("run", type=Path)
    sh.add_argument("candidate", type=int)
    sh.set_defaults(handler=commands.show)

    st = sub.add_parser("status", help="the figures of a run, read from its checkpoint")
    st.add_argument("run", type=Path)
    st.set_defaults(handler=commands.status)

    rp = sub.add_parser(
        "report",
        help="an interactive HTML page of a run, or of several runs compared",
        description="Write one self-contained HTML page (works offline, from the file): the best "
        "so far, every evaluation, the lineage tree, each candidate's hypothesis, diff and "
        "evaluations; with several runs, their best so far side by side.",
    )
    rp.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run folders (runs/*)")
    rp.add_argument(
        "--out",
        type=Path,
        help="folder of the page (default: RUN/report; several runs: RUN/compare)",
    )
    rp.add_argument(
        "--watch",
        action="store_true",
        help="rewrite the page after each checkpoint while the run is live",
    )
    rp.add_argument("--parent", type=int, help=argparse.SUPPRESS)  # `evo run --report`'s pid
    rp.set_defaults(handler=commands.report)

    co = sub.add_parser(
        "confirm",
        help="measure a run's best programs again on fresh seeds, beside the seed program",
        description="Evaluate the seed program and the run's best programs again on seeds the "
        "search never used (optionally at another budget) and report each one's gain over the "
        "seed program with a 90%% interval, beside what the search reported; a confirmation "
        "stopped midway and started again runs only what is missing (evo.run.confirm).",
    )
    co.add_argument("run", type=Path)
    co.add_argument("--top", type=int, default=3, help="best programs to confirm (default: 3)")
    co.add_argument("--seeds", type=int, default=3, help="fresh seeds for each (default: 3)")
    co.add_argument("--budget", type=float, help="training budget in seconds (default: the run's)")
    co.set_defaults(handler=commands.confirm)

    ex = sub.add_parser("export", help="the winning lineage as a git repository")
    ex.add_argument("run", type=Path)
    ex.add_argument("--git", type=Path, required=True, metavar="DIR", help="a new folder")
    ex.set_defaults(handler=commands.export)

    be = sub.add_parser("bench", help="measure evo itself (see BENCHMARKS.md)")
    be.add_argument(
        "name",
        choices=[
            "overhead",
            "scale",
            "efficiency",
            "ensemble",
            "noise",
            "speedup",
            "transfer",
            "prewarm",
            "lineage",
            "realistic",
            "refusals",
        ],
        help="overhead: evaluator utilisation and overhead per candidate; scale: candidates per "
        "second and driver memory with zero-cost evaluations; efficiency: presets against the "
        "single chain on three landscapes; ensemble: fixed model weights against "
        "--adaptive-models for the same spend; noise: the run's noise estimate against a known "
        "sigma; speedup: the time to the single chain's best with 1, 2, 4, 8 evaluators; "
        "transfer: does what wins at a short budget win at the full one; prewarm: the "
        "training fraction with and without pre-warm; lineage: evo lineage/report on a large "
        "lineage; realistic: selection rules against the truth at realistic signal-to-noise; "
        "refusals: what a run spends when every proposal of its model is refused",
    )
    numbers = "comma-separated"
    be.add_argument(
        "--evaluators", default="1,2,4,8", help=f"overhead, speedup: {numbers} (1,2,4,8)"
    )
    be.add_argument(
        "--islands",
        help=f"overhead (1,4,16) and scale (4,16,64): {numbers}; refusals: one number (4)",
    )
    be.add_argument("--latency", default="1,5", help=f"overhead: mutation seconds, {numbers}")
    be.add_argument(
        "--eval-seconds", type=float, default=2.0, help="overhead, prewarm, speedup: per evaluation"
    )
    be.add_argument(
        "--setup-seconds", type=float, default=5.0, help="prewarm: set-up per evaluation (5)"
    )
    be.add_argument("--per-evaluator", type=int, default=12, help="overhead: evaluations each")
    be.add_argument(
        "--isolation",
        default="auto",
        help=f"overhead, prewarm: isolation levels, {numbers} (auto; prewarm: off at the first)",
    )
    be.add_argument(
        "--evaluations", default="1000,10000", help=f"scale: evaluations a run, {numbers}"
    )
    be.add_argument(
        "--seeds",
        type=int,
        default=5,
        help="efficiency, ensemble, noise, speedup, realistic: runs per case (5)",
    )
    be.add_argument(
        "--sigma", type=float, default=0.3, help="noise: each program's own noise (0.3)"
    )
    be.add_argument(
        "--shared", type=float, default=0.0, help="noise: the seeds' noise common to all (0)"
    )
    be.add_argument(
        "--evals",
        type=int,
        help="efficiency, prewarm, speedup: evaluations a run (40); realistic (400)",
    )
    be.add_argument(
        "--target",
        type=Path,
        help="efficiency (instead of the landscapes), prewarm (default: synthetic), transfer "
        "(default: gpt): a target",
    )
    be.add_argument(
        "--landscapes",
        default="bowl,rugged,valley",
        help="efficiency: synthetic landscapes, comma-separated (bowl,rugged,valley)",
    )
    be.add_argument(
        "--budget",
        type=float,
        default=0.0,
        help="efficiency, prewarm: seconds an evaluation (target's)",
    )
    be.add_argument(
        "--presets",
        help="efficiency (the first is the reference; single-chain,adaptive), noise (adaptive) "
        "and speedup (adaptive; against the single chain): presets to compare, names or files",
    )
    be.add_argument(
        "--regimes", default="p3-g1,p10-g1,p10-g3,p25-g0.5", help="realistic: edit regimes"
    )
    be.add_argument(
        "--policies", default="chain,threshold,default", help="realistic: selection rules"
    )
    be.add_argument(
        "--budgets", default="15,60", help="transfer: a short and the full budget, seconds"
    )
    be.add_argument("--variants", type=int, default=20, help="transfer: programs (20)")
    be.add_argument(
        "--rows", default="1000000", help="lineage: rows, or several sizes (10000,100000)"
    )
    be.add_argument("--out", type=Path, default=Path("runs/bench"), help="raw results folder")
    be.set_defaults(handler=commands.bench)
    return parser


def _add_setting(
    parser: argparse.ArgumentParser, name: str, spec: Field, with_defaults: bool
) -> None:
    """The flag of one setting: `--max-evals N` for max_evals; `--model` (repeatable) for the
    models. Without defaults, an absent flag leaves the setting to the preset or config file."""
    default, kind = spec.default, spec.metadata["kind"]
    shown = f" (default: {default:g})" if isinstance(default, int | float) else ""
    shown = f" (default: {default})" if isinstance(default, str) and default else shown
    shown = f" (default: {'on' if default else 'off'})" if kind is bool else shown
    text = spec.metadata["help"] + shown
    if kind is tuple:
        flag, options = (
            f"--{name.removesuffix('s')}",
            {"action": "append", "metavar": "NAME[:WEIGHT]"},
        )
    elif kind is bool:
        flag, options = f"--{name.replace('_', '-')}", {"action": argparse.BooleanOptionalAction}
    else:
        flag, options = f"--{name.replace('_', '-')}", {"type": kind}
    parser.add_argument(
        flag,
        dest=name,
        default=(list(default) if kind is tuple else default) if with_defaults else None,
        help=text,
        **options,
    )


def _add_variant_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        nargs="?",
        type=Path,
        help="target folder holding target.toml (default: the shipped gpt target)",
    )
    parser.add_argument(
        "--file",
        action="append",
        default=[],
        metavar="[REL=]PATH",
        help="a variant of a mutable file; REL= names which one when the target has several",
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default: auto)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (0)")


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.handler(args)
    except UsageError as e:
        print(f"evo: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("evo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `evo lineage ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
