"""`python -m evo`: the command line."""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path

import evo
from evo.errors import UsageError
from evo.views.table import print_table

DEFAULT_TARGET = Path(__file__).resolve().parent.parent / "targets" / "gpt"


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error that says where to look, instead of a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message}; see `python -m {self.prog} --help`")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="evo", description=evo.__doc__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    ev = commands.add_parser(
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
    ev.set_defaults(handler=_eval)

    pr = commands.add_parser(
        "propose",
        help="propose one validated child of a variant",
        description="Ask a mutation operator for one hypothesis and edit, validate the child, "
        "and print the hypothesis and its unified diff (or every rejection reason; exit 1).",
    )
    _add_variant_arguments(pr)
    pr.add_argument(
        "--operator",
        default="auto",
        help="offline, anthropic, openai, or auto: anthropic when ANTHROPIC_API_KEY is set, "
        "else offline (default: auto)",
    )
    pr.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME[:WEIGHT]",
        help="a model of the ensemble, repeatable (default for anthropic: haiku 0.7, sonnet 0.3)",
    )
    pr.add_argument("--base-url", help="the model server (required for openai)")
    pr.add_argument("--max-tokens", type=int, default=4096, help="reply length cap (4096)")
    pr.add_argument("--temperature", type=float, help="sampling temperature (model's default)")
    pr.add_argument("--spend-cap", type=float, default=10.0, help="USD cap for the calls (10)")
    pr.set_defaults(handler=_propose)

    rn = commands.add_parser(
        "run",
        help="run the evolutionary search (islands, evaluators, lineage, checkpoints)",
        description="Run evo: islands of programs evolve by proposals and evaluations until a "
        "stop condition. Settings come from the defaults, then --preset, then --config, then "
        "these options; the effective configuration is saved in the run folder.",
    )
    for flag, kind, text in [
        ("--target", str, "target folder (default: the shipped gpt target)"),
        ("--islands", int, "number of islands (4)"),
        ("--population", int, "programs kept per island (8)"),
        ("--evaluators", int, "evaluator actors; 0 = one per GPU, or one without GPUs (0)"),
        ("--gpus-per-eval", float, "GPUs per evaluator, fractions allowed (1)"),
        ("--budget", float, "training budget per evaluation in seconds (target's)"),
        ("--max-evals", int, "stop after this many evaluations (40)"),
        ("--max-hours", float, "stop after this many hours"),
        ("--max-cost", float, "stop once the operator has spent this many USD"),
        ("--operator", str, "auto, offline, anthropic or openai (auto: anthropic with a key)"),
        ("--seed", int, "seed of every random choice of the run (0)"),
        ("--out", str, "where run folders are created (runs)"),
        ("--address", str, "Ray cluster to join, e.g. auto; default: start a local Ray"),
    ]:
        rn.add_argument(flag, type=kind, help=text)
    rn.add_argument("--preset", help="island preset: ring, explore, single-chain or a .toml file")
    rn.add_argument("--config", type=Path, help="a TOML file of settings")
    rn.add_argument("--resume", type=Path, metavar="DIR", help="go on with the run in DIR")
    rn.set_defaults(handler=_run)

    li = commands.add_parser(
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
    li.set_defaults(handler=_lineage)

    sh = commands.add_parser("show", help="one candidate: source, diff, evaluations, verdict")
    sh.add_argument("run", type=Path)
    sh.add_argument("candidate", type=int)
    sh.set_defaults(handler=_show)

    st = commands.add_parser("status", help="the figures of a run, read from its checkpoint")
    st.add_argument("run", type=Path)
    st.set_defaults(handler=_status)

    rp = commands.add_parser("report", help="an HTML report with plots of a run")
    rp.add_argument("run", type=Path)
    rp.add_argument("--out", type=Path, help="folder of the report (default: RUN/report)")
    rp.set_defaults(handler=_report)

    ex = commands.add_parser("export", help="the winning lineage as a git repository")
    ex.add_argument("run", type=Path)
    ex.add_argument("--git", type=Path, required=True, metavar="DIR", help="a new folder")
    ex.set_defaults(handler=_export)

    be = commands.add_parser("bench", help="measure evo itself (see BENCHMARKS.md)")
    be.add_argument(
        "name",
        choices=["overhead", "scale", "efficiency", "lineage"],
        help="overhead: evaluator utilisation and overhead per candidate; scale: candidates per "
        "second and driver memory with zero-cost evaluations; efficiency: the single chain "
        "against 4 islands; lineage: evo lineage/report on a large lineage",
    )
    numbers = "comma-separated"
    be.add_argument("--evaluators", default="1,2,4,8", help=f"overhead: {numbers} (1,2,4,8)")
    be.add_argument("--islands", help=f"overhead (1,4,16) and scale (4,16,64): {numbers}")
    be.add_argument("--latency", default="1,5", help=f"overhead: mutation seconds, {numbers}")
    be.add_argument("--eval-seconds", type=float, default=2.0, help="overhead: per evaluation")
    be.add_argument("--per-evaluator", type=int, default=12, help="overhead: evaluations each")
    be.add_argument(
        "--evaluations", default="1000,10000", help=f"scale: evaluations a run, {numbers}"
    )
    be.add_argument("--seeds", type=int, default=5, help="efficiency: runs per preset (5)")
    be.add_argument("--evals", type=int, default=40, help="efficiency: evaluations a run (40)")
    be.add_argument(
        "--target", type=Path, help="efficiency: a target (default: the rugged knob target)"
    )
    be.add_argument(
        "--budget", type=float, default=0.0, help="efficiency: seconds an evaluation (target's)"
    )
    be.add_argument(
        "--presets",
        default="single-chain,ring",
        help="efficiency: presets to compare, the first is the reference (single-chain,ring)",
    )
    be.add_argument("--rows", type=int, default=1_000_000, help="lineage rows (1,000,000)")
    be.add_argument("--out", type=Path, default=Path("runs/bench"), help="raw results folder")
    be.set_defaults(handler=_bench)
    return parser


def _bench(args: argparse.Namespace) -> int:
    from evo.bench import main

    return main(args)


def _lineage(args: argparse.Namespace) -> int:
    from evo.store.reader import Lineage

    lineage = Lineage(args.runs)
    if args.sql:
        print_table(*lineage.table(args.sql))
        return 0
    if args.ancestry is not None:
        for run_id in lineage.runs:
            chain = lineage.ancestry(run_id, args.ancestry)
            if not chain:
                raise UsageError(f"run {run_id} has no candidate {args.ancestry}")
            print_table(
                ["run", "id", "parent", "island", "fitness", "status", "hypothesis"],
                [(run_id, *row.values()) for row in chain],
            )
        return 0
    filters = [
        (c, getattr(args, c))
        for c in ("island", "status", "operator")
        if getattr(args, c) is not None
    ]
    if filters:
        where = " AND ".join(f"{column} = ?" for column, _ in filters)
        print_table(
            *lineage.table_with(
                "SELECT run_id AS run, candidate_id AS id, parent_id AS parent, island, status, "
                f"round(fitness, 4) AS fitness, hypothesis FROM candidates WHERE {where} "
                "ORDER BY run_id, candidate_id",
                [value for _, value in filters],
            )
        )
        return 0
    for number, run_id in enumerate(lineage.runs):
        print(("\n" if number else "") + "\n".join(lineage.summary(run_id)))
    return 0


def _show(args: argparse.Namespace) -> int:
    from evo.store.reader import Lineage, show

    lineage = Lineage([args.run])
    print("\n".join(show(lineage, args.run.name, args.candidate)))
    return 0


def _status(args: argparse.Namespace) -> int:
    import time

    from evo.config import RunConfig, read_toml
    from evo.run.progress import Figures
    from evo.store import checkpoint

    state = checkpoint.load(args.run)
    if state is None or not (args.run / "config.toml").is_file():
        raise UsageError(f"{args.run} has no checkpoint yet; pass a run folder such as runs/<id>")
    config = RunConfig().with_overrides(read_toml(args.run / "config.toml"), str(args.run))
    age = time.time() - (args.run / "checkpoint.json").stat().st_mtime
    print(
        f"run {args.run.name}: last checkpoint {age:.0f} s ago; "
        f"{len(state['pending'])} candidates waiting"
    )
    print(Figures.of_checkpoint(state, config.max_evals, config.max_hours).line())
    return 0


def _report(args: argparse.Namespace) -> int:
    from evo.store.reader import Lineage
    from evo.views.report import write_report

    path = write_report(Lineage([args.run]), args.run.name, args.out or args.run / "report")
    print(f"report: {path}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from evo.store.reader import Lineage
    from evo.views.export import export_git

    commits = export_git(Lineage([args.run]), args.run.name, args.git)
    print(f"{commits} commits in {args.git} (branch evo)")
    return 0


_RUN_SETTINGS = (
    "target",
    "islands",
    "population",
    "evaluators",
    "gpus_per_eval",
    "budget",
    "max_evals",
    "max_hours",
    "max_cost",
    "operator",
    "seed",
    "out",
    "address",
)


def _run(args: argparse.Namespace) -> int:
    from evo.run.folder import new_run, resume_run

    overrides = {k: getattr(args, k) for k in _RUN_SETTINGS if getattr(args, k) is not None}
    if args.resume:
        if args.preset or args.config:
            raise UsageError("--resume keeps the run's settings; drop --preset and --config")
        resume_run(args.resume, overrides)
    else:
        new_run(overrides, args.preset, args.config)
    return 0


def _add_variant_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        nargs="?",
        type=Path,
        default=DEFAULT_TARGET,
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


def _eval(args: argparse.Namespace) -> int:
    from evo.evaluate.sandbox import evaluate, resolve_device
    from evo.target import load_target

    for flag, value in (("--budget", args.budget), ("--timeout", args.timeout)):
        if value is not None and not value > 0:
            raise UsageError(f"{flag} must be a number of seconds > 0, not {value:g}")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be at least 1, not {args.threads}")
    target = load_target(args.target)
    device = resolve_device(args.device)
    result = evaluate(
        target,
        _variant_sources(args.file, target.mutable),
        budget_seconds=args.budget,
        timeout_seconds=args.timeout,
        device=device,
        seed=args.seed,
        threads=args.threads,
    )
    print(result.to_json() if args.json else result.summary())
    if result.status != "ok" and result.stderr_tail and not args.json:
        print(result.stderr_tail.rstrip(), file=sys.stderr)
    return 0


def _propose(args: argparse.Namespace) -> int:
    from evo.evaluate.sandbox import resolve_device
    from evo.mutate.llm import LLMConfig
    from evo.mutate.operator import make_operator
    from evo.mutate.proposal import Validator
    from evo.target import load_target

    target = load_target(args.target)
    parent = target.read_mutable() | _variant_sources(args.file, target.mutable)
    config = LLMConfig(
        backend=args.operator if args.operator == "openai" else "anthropic",
        base_url=args.base_url,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        spend_cap_usd=args.spend_cap,
        **({"models": tuple(_model_weight(spec) for spec in args.model)} if args.model else {}),
    )
    if config.backend == "openai" and not args.model:
        raise UsageError("the openai operator needs --model NAME (the server's model name)")
    operator = make_operator(
        args.operator, Validator(target), args.seed, resolve_device(args.device), config
    )
    proposal = operator.propose(parent)
    print(
        f"operator: {proposal.operator}" + (f"  model: {proposal.model}" if proposal.model else "")
    )
    for reason in proposal.rejections:
        print(f"rejected: {reason}")
    if proposal.usage.input_tokens or proposal.usage.output_tokens:
        u = proposal.usage
        print(
            f"tokens: input {u.input_tokens}, output {u.output_tokens}, cache write "
            f"{u.cache_write_tokens}, cache read {u.cache_read_tokens}; "
            f"cost ${u.cost_usd:.4f}; {u.latency_seconds:.1f}s"
        )
    if not proposal.valid:
        return 1
    print(f"hypothesis: {proposal.hypothesis}")
    for name in target.mutable:
        diff = difflib.unified_diff(
            parent[name].splitlines(keepends=True),
            proposal.child[name].splitlines(keepends=True),
            f"a/{name}",
            f"b/{name}",
        )
        sys.stdout.writelines(diff)
    return 0


def _model_weight(spec: str) -> tuple[str, float]:
    name, _, weight = spec.partition(":")
    try:
        return name, float(weight or 1.0)
    except ValueError:
        raise UsageError(f"--model {spec!r}: the weight after ':' must be a number") from None


def _variant_sources(files: list[str], mutable: tuple[str, ...]) -> dict[str, str]:
    sources = {}
    for spec in files:
        rel, sep, path = spec.rpartition("=")
        if not sep:
            if len(mutable) != 1:
                raise UsageError(
                    f"the target has several mutable files ({', '.join(mutable)}); "
                    "pass --file REL=PATH to say which one PATH replaces"
                )
            rel = mutable[0]
        variant = Path(path)
        if not variant.is_file():
            raise UsageError(f"variant file {variant} does not exist; pass an existing file")
        sources[rel] = variant.read_text()
    return sources
