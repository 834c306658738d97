"""What each command of `python -m evo` does, given its parsed arguments."""

from __future__ import annotations

import argparse
import difflib
import sys
import time
from pathlib import Path

from evo.errors import UsageError
from evo.status import Status
from evo.views.table import print_table


def bench(args: argparse.Namespace) -> int:
    from evo.bench.command import main

    return main(args)


def lineage(args: argparse.Namespace) -> int:
    from evo.store.reader import Lineage
    from evo.views.summary import summary

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
        print(("\n" if number else "") + "\n".join(summary(lineage, run_id)))
    return 0


def show(args: argparse.Namespace) -> int:
    from evo.store.reader import Lineage
    from evo.views.show import show

    lineage = Lineage([args.run])
    print("\n".join(show(lineage, args.run.name, args.candidate)))
    return 0


def status(args: argparse.Namespace) -> int:
    from evo.run.folder import read_config
    from evo.run.progress import Figures
    from evo.run.state import RunState
    from evo.store import checkpoint

    saved = checkpoint.load(args.run)
    if saved is None:
        raise UsageError(f"{args.run} has no checkpoint yet; pass a run folder such as runs/<id>")
    config = read_config(args.run)
    state = RunState.from_json(saved)
    age = time.time() - (args.run / checkpoint.NAME).stat().st_mtime
    print(
        f"run {args.run.name}: last checkpoint {age:.0f} s ago; "
        f"{len(state.pending)} candidates waiting"
    )
    print(Figures.of(state, config.limits, state.elapsed).line())
    return 0


def report(args: argparse.Namespace) -> int:
    from evo.store.reader import Lineage
    from evo.views.report import watch, write_report

    first = args.runs[0]
    out = args.out or first / ("report" if len(args.runs) == 1 else "compare")
    if args.watch:
        if len(args.runs) > 1:
            raise UsageError("--watch follows one run; pass one run folder")
        print(f"report: {out / 'report.html'} (rewritten after each checkpoint)", flush=True)
        path = watch(first, out, parent=args.parent)
    else:
        lineage = Lineage(args.runs)
        measures = {
            f"{run.metric} ({'lower' if run.minimize else 'higher'} is better)": run_id
            for run_id, run in lineage.runs.items()
        }
        if len(measures) > 1:
            named = " but ".join(f"{run_id} measures {m}" for m, run_id in measures.items())
            raise UsageError(f"{named}: compare runs of one target and metric")
        path = write_report(lineage, out)
    print(f"report: {path}")
    return 0


def confirm(args: argparse.Namespace) -> int:
    from evo.run import credentials
    from evo.run.confirm import confirm
    from evo.run.folder import read_config
    from evo.store.reader import Lineage
    from evo.views.confirmation import describe

    credentials.restart_without()
    credentials.take()  # its evaluations need none of them
    confirm(args.run, read_config(args.run), args.top, args.seeds, args.budget)
    print("\n".join(describe(Lineage([args.run]), args.run.name)))
    return 0


def export(args: argparse.Namespace) -> int:
    from evo.store.reader import Lineage
    from evo.views.export import export_git

    commits = export_git(Lineage([args.run]), args.run.name, args.git)
    print(f"{commits} commits in {args.git} (branch evo)")
    return 0


def run(args: argparse.Namespace) -> int:
    from evo.run.credentials import restart_without
    from evo.run.folder import new_run, resume_run
    from evo.store.lineage import CONFIRMATIONS

    restart_without()  # the run's processes never hold them; its island actors get them
    given = _given(args, ("", "search", "evaluation", "limits", "llm"))
    if given.get("max_cost", 1) <= 0:
        raise UsageError("--max-cost takes a number of USD above 0; leave it out for no cap")
    if args.resume:
        if args.preset or args.config:
            raise UsageError("--resume keeps the run's settings; drop --preset and --config")
        run_dir = resume_run(args.resume, given, args.report)
    else:
        run_dir = new_run(given, args.preset, args.config, args.report)
    if (run_dir / CONFIRMATIONS).is_dir():  # --confirm N, or an `evo confirm` of before
        from evo.store.reader import Lineage
        from evo.views.confirmation import describe

        print("\n".join(describe(Lineage([run_dir]), run_dir.name)))
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from evo.evaluate import isolation, sandbox
    from evo.run import credentials

    credentials.restart_without()
    credentials.take()  # an evaluation needs none of them
    for flag, value in (("--budget", args.budget), ("--timeout", args.timeout)):
        if value is not None and not value > 0:
            raise UsageError(f"{flag} must be a number of seconds > 0, not {value:g}")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be at least 1, not {args.threads}")
    if args.memory_gb < 0:
        raise UsageError(f"--memory-gb must be >= 0 (0: the default cap), not {args.memory_gb:g}")
    target = _target(args.target)
    device = sandbox.resolve_device(args.device)
    level = isolation.resolve(args.isolation, device)
    result = sandbox.evaluate(
        target,
        _variant_sources(args.file, target.mutable),
        budget_seconds=args.budget,
        timeout_seconds=args.timeout,
        device=device,
        seed=args.seed,
        threads=args.threads,
        isolation=level,
        memory_bytes=int(args.memory_gb * 2**30) or None,
    )
    print(result.to_json() if args.json else result.summary())
    if result.status != Status.OK and result.stderr_tail and not args.json:
        print(result.stderr_tail.rstrip(), file=sys.stderr)
    return 0


def propose(args: argparse.Namespace) -> int:
    from evo.config import RunConfig
    from evo.evaluate.sandbox import resolve_device
    from evo.mutate.llm import LLMConfig
    from evo.mutate.operator import make_operator
    from evo.mutate.proposal import Validator

    target = _target(args.target)
    parent = target.read_mutable() | _variant_sources(args.file, target.mutable)
    settings = RunConfig().with_settings(_given(args, ("llm",)), "the command line").llm
    config = LLMConfig.from_settings(settings)
    operator = make_operator(
        settings.operator, Validator(target), args.seed, resolve_device(args.device), config
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


def _given(args: argparse.Namespace, sections: tuple[str, ...]) -> dict:
    """The settings of these tables ("" the top level) that the command line gave."""
    from evo.config import SETTINGS

    return {
        name: getattr(args, name)
        for name, (section, _) in SETTINGS.items()
        if section in sections and getattr(args, name, None) is not None
    }


def _target(path: Path | None):
    """The target given, or the shipped default."""
    from evo.shipped import default_target
    from evo.target import load_target

    return load_target(path or default_target())
