"""A run folder: its configuration, starting or resuming the engine in it, and its outputs.

runs/<id>/
  config.toml        the effective configuration (a resume reads it back)
  checkpoint.json    the latest checkpoint (checkpoint.prev.json: the one before)
  lineage/           one Parquet file per flush, every candidate of the run
  confirmations/     with `evo confirm` or --confirm: the best programs measured again
  best/              at the end: the best program, its diff against the seed, its ancestry
  report/            with --report: report.html, kept up to date while the run goes
"""

from __future__ import annotations

import difflib
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from evo.config import RunConfig, read_toml
from evo.errors import UsageError
from evo.run.confirm import confirm
from evo.run.engine import Engine
from evo.run.state import RunState
from evo.shipped import default_target, preset_path
from evo.status import Event
from evo.store import checkpoint
from evo.store.lineage import read_lineage
from evo.store.reader import sources
from evo.target import Target, load_target

# What a resume may change: how long it goes on (and how much it may spend), where it runs, and
# which models propose.
RESUMABLE = {"max_evals", "max_hours", "max_cost", "address", "models", "adaptive_models"}
# Settings whose default changed since runs were first saved, with the value a saved run that
# lacks them was searching with: a resume goes on as it started.
FORMER_DEFAULTS = {"search": {"start_islands": 0, "patience": 0}}
REPORT_WAIT_S = 300  # for the page after the last checkpoint (a long run's takes a while)


def read_config(run_dir: Path) -> RunConfig:
    """The configuration a run folder was started with."""
    if not (run_dir / "config.toml").is_file():
        raise UsageError(f"{run_dir} is not a run folder (no config.toml); pass runs/<id>")
    tables = read_toml(run_dir / "config.toml")
    for section, former in FORMER_DEFAULTS.items():
        if isinstance(tables.get(section), dict):
            tables[section] = former | tables[section]
    return RunConfig().with_tables(tables, str(run_dir))


def new_run(
    settings: dict[str, Any], preset: str | None, config_file: Path | None, report: bool = False
) -> Path:
    """Settings from the defaults, then the preset, the config file, the flags (by name)."""
    config = RunConfig()
    for path in [preset_path(preset) if preset else None, config_file]:
        if path:
            config = config.with_tables(read_toml(path), str(path))
    config = config.with_settings(settings, "the command line")
    target = load_target(config.target or default_target())
    config = config.with_settings({"target": str(target.root)}, "the target")
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
    run_dir = Path(config.out) / run_id
    try:
        run_dir.mkdir(parents=True)
        (run_dir / "config.toml").write_text(config.to_toml())
    except OSError as e:
        raise UsageError(
            f"cannot create the run folder {run_dir} ({e}); pass a writable --out"
        ) from None
    print(f"run {run_id}: {run_dir}")
    _go(config, target, run_dir, None, report)
    return run_dir


def resume_run(run_dir: Path, settings: dict[str, Any], report: bool = False) -> Path:
    config = read_config(run_dir)
    if "target" in settings:  # the same folder, however it is written
        settings = {**settings, "target": str(Path(settings["target"]).resolve())}
    current = config.flat()
    asked = config.with_settings(settings, "the command line").flat()  # as the run reads them
    changed = {name for name in settings if asked[name] != current[name]}
    if changed - RESUMABLE:
        raise UsageError(
            f"a resumed run keeps its settings; {', '.join(sorted(changed - RESUMABLE))} cannot "
            f"change (only {', '.join(sorted(RESUMABLE))} can); start a new run instead"
        )
    config = config.with_settings(settings, "the command line")
    saved = checkpoint.load(run_dir)
    if saved is None:
        raise UsageError(f"{run_dir} has no readable checkpoint; start a new run instead")
    (run_dir / "config.toml").write_text(config.to_toml())  # the new stop conditions
    target = load_target(config.target)
    state = RunState.from_json(saved)
    print(f"resuming run {run_dir.name} at evaluation {state.evals_done}")
    _go(config, target, run_dir, state, report)
    return run_dir


def _go(
    config: RunConfig, target: Target, run_dir: Path, state: RunState | None, report: bool
) -> None:
    engine = Engine(config, target, run_dir, resume=state)
    reporter = _reporter(run_dir) if report else None
    try:
        state = engine.run()
    except BaseException:
        if reporter:  # its page stays as the last checkpoint left it
            reporter.kill()
        raise
    if reporter:
        try:  # the page after the last checkpoint
            reporter.wait(timeout=REPORT_WAIT_S)
        except subprocess.TimeoutExpired:
            reporter.kill()
        print(f"report: {run_dir / 'report' / 'report.html'}")
    if state.best:
        best = state.best
        seed_fitness = write_best(run_dir, target, best.member.id, run_dir / "best")
        print(
            f"best {target.metric} {best.fitness:.4f} (#{best.member.id}, island {best.island}); "
            f"seed {seed_fitness:.4f}, noise sigma {state.sigma:.4f}; {state.evals_done} "
            f"evaluations; results in {run_dir / 'best'}"
        )
        top = config.evaluation.confirm
        if top and not engine.stopping:  # a Ctrl-C stops the run, not only its search
            confirm(run_dir, config, top, pool=engine.evaluators)  # `evo run` prints its gains
        elif top:
            print(f"to confirm its best: python -m evo confirm {run_dir} --top {top}")
    if not report:
        print(f"read it: python -m evo lineage {run_dir}; python -m evo report {run_dir}")
    cap = config.limits.max_cost
    if cap and state.spent >= cap:
        print(
            f"stopped at the cost cap: spent ${state.spent:.2f} of ${cap:.2f}; to go on: "
            f"python -m evo run --resume {run_dir} --max-cost {2 * cap:g}"
        )
    else:
        print(f"to go on: python -m evo run --resume {run_dir}")


def _reporter(run_dir: Path) -> subprocess.Popen:
    """`evo report --watch` on the run, in a process of its own so that drawing the page never
    holds up the run; it stops after the last checkpoint, or when this process is gone."""
    command = ["report", "--watch", str(run_dir), "--parent", str(os.getpid())]
    return subprocess.Popen(
        [sys.executable, "-m", "evo", *command],
        stdout=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C stops the run gently; the page follows it
    )


def write_best(run_dir: Path, target: Target, best_id: int, folder: Path) -> float:
    """best/: the program's files, its diff against the seed, and its chain of ancestors; returns
    the seed program's fitness. Read with pyarrow alone: the end of a run needs none of the
    analysis commands' packages (a GPU machine may have only the run's)."""
    columns = ["event", "candidate_id", "parent_id", "island", "fitness", "hypothesis", "sources"]
    table = read_lineage(run_dir / "lineage", columns)
    table = table.filter(pc.equal(table["event"], Event.CANDIDATE.value))
    rows = {row["candidate_id"]: row for row in table.to_pylist()}
    folder.mkdir(exist_ok=True)
    best, seed = sources(rows[best_id]), sources(rows[0])
    diff = []
    for name, text in best.items():
        (folder / name).write_text(text)
        diff += difflib.unified_diff(
            seed[name].splitlines(keepends=True),
            text.splitlines(keepends=True),
            f"seed/{name}",
            f"best/{name}",
        )
    (folder / "seed.diff").write_text("".join(diff))
    chain, node = [], best_id
    while node in rows and len(chain) <= len(rows):  # a damaged lineage cannot loop forever
        chain.append(rows[node])
        node = rows[node]["parent_id"]
    lines = [f"# Ancestry of candidate {best_id} ({target.metric}, {target.direction})", ""]
    for step in reversed(chain):
        lines.append(
            f"- #{step['candidate_id']} island {step['island']} {target.metric} "
            f"{step['fitness']:.4f}: {step['hypothesis']}"
        )
    (folder / "ancestry.md").write_text("\n".join(lines) + "\n")
    return rows[0]["fitness"]
