"""A target: the folder evo improves, described by its `target.toml`.

The protocol is documented for users in targets/README.md. Loading validates everything up front
so that a mistake in `target.toml` costs a one-line error, not an hour of failed evaluations.
"""

from __future__ import annotations

import shlex
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evo.errors import UsageError

DIRECTIONS = ("minimize", "maximize")


@dataclass(frozen=True)
class Rules:
    """Static rules for the mutable code, checked before a variant is evaluated.

    required_names: top-level names every variant must keep defining (the fixed part calls them).
    forbidden_imports: modules a variant may not import (prefix match: "os" covers "os.path").
    forbidden_names: identifiers a variant may not use, as a name or an attribute.
    """

    required_names: tuple[str, ...] = ()
    forbidden_imports: tuple[str, ...] = ()
    forbidden_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Measure:
    """The measure phase ([measure] in target.toml): the metric computed in a process that never
    ran the mutable code, from what the run phase handed off.

    entry: argv of the measure phase, run after the run phase has ended (every process of it,
        at the namespace level), in a working copy of the fixed files alone, with the run
        phase's output folder read-only.
    prepare: argv run before the run phase in that same copy, the one phase that may write the
        cache (corpora, held-out data); () for none.
    held_out: folders of the target, absent from the run phase's working copy.
    held_out_cache: folders of EVO_CACHE_DIR the run phase never sees.
    handoff_seconds: how long the run phase may take after its training clock stops (to export
        a model, say): past it, by evo's own clock, the evaluation is invalid.
    """

    entry: tuple[str, ...]
    prepare: tuple[str, ...] = ()
    held_out: tuple[str, ...] = ()
    held_out_cache: tuple[str, ...] = ()
    handoff_seconds: float = 10.0


@dataclass(frozen=True)
class Target:
    """A loaded, validated target.

    root: the target folder; every file in it except `mutable` is fixed.
    mutable: paths relative to root of the only files an operator may change.
    entry: argv of the fixed entry point, run in a working copy of root.
    budget_seconds: default training budget, enforced by the fixed part.
    timeout_seconds: hard wall-clock limit at the default budget; the sandbox kills the
        evaluation's whole process group past it. A different budget moves it by the same amount.
    choices: module-level names of the mutable code and the alternatives an operator may swap
        among (e.g. ACTIVATION: relu2 | gelu).
    network: whether evaluations may reach the network ([sandbox] network; at the namespace
        isolation level they have loopback only unless this is true).
    prewarm: whether the fixed part calls protocol.ready() ([sandbox] prewarm), so that an
        evaluator may start it while another evaluation trains.
    screen: the fraction of the budget a candidate is first screened at ([budget] screen;
        evo.run.screen), 0 for none: the target's default, a run's setting overrides it.
    measure: the measure phase, for a target measured in two phases; None: one process runs
        the mutable code and measures it.
    """

    name: str
    root: Path
    mutable: tuple[str, ...]
    entry: tuple[str, ...]
    metric: str
    direction: str
    budget_seconds: float
    timeout_seconds: float
    description: str = ""
    instructions: str | None = None
    rules: Rules = field(default_factory=Rules)
    choices: dict[str, tuple[str | int | float | bool, ...]] = field(default_factory=dict)
    network: bool = False
    prewarm: bool = False
    screen: float = 0.0
    measure: Measure | None = None

    @property
    def phases(self) -> str:
        """How an evaluation of it is measured: "run+measure" or "one process"."""
        return "run+measure" if self.measure else "one process"

    def timeout_for(self, budget_seconds: float) -> float:
        return budget_seconds + (self.timeout_seconds - self.budget_seconds)

    def read_mutable(self) -> dict[str, str]:
        """The target's own mutable sources: the seed program."""
        return {rel: (self.root / rel).read_text() for rel in self.mutable}


_TOP_KEYS = {
    "name",
    "description",
    "mutable",
    "entry",
    "instructions",
    "metric",
    "budget",
    "rules",
    "choices",
    "sandbox",
    "measure",
}
_METRIC_KEYS = {"name", "direction"}
_BUDGET_KEYS = {"seconds", "timeout_seconds", "screen"}
_RULES_KEYS = {"required_names", "forbidden_imports", "forbidden_names"}
_SANDBOX_KEYS = {"network", "prewarm"}
_MEASURE_KEYS = {"entry", "prepare", "held_out", "held_out_cache", "handoff_seconds"}


def load_target(path: str | Path) -> Target:
    """Load and validate a target folder (or its target.toml); raise UsageError on any problem."""
    path = Path(path)
    root = path.parent if path.name == "target.toml" else path
    toml_path = root / "target.toml"
    if not root.is_dir():
        raise UsageError(f"target folder {root} does not exist; pass a folder holding target.toml")
    if not toml_path.is_file():
        raise UsageError(f"{toml_path} is missing; every target needs one (see targets/README.md)")
    try:
        data = tomllib.loads(toml_path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{toml_path} is not valid TOML ({e}); fix the syntax there") from None

    where = str(toml_path)
    _reject_unknown(data, _TOP_KEYS, where)
    metric = _table(data, "metric", where)
    budget = _table(data, "budget", where)
    rules = data.get("rules", {})
    if not isinstance(rules, dict):
        raise UsageError(f"{where}: [rules] must be a table; see targets/README.md")
    _reject_unknown(metric, _METRIC_KEYS, f"{where} [metric]")
    _reject_unknown(budget, _BUDGET_KEYS, f"{where} [budget]")
    _reject_unknown(rules, _RULES_KEYS, f"{where} [rules]")
    sandbox = data.get("sandbox", {})
    if not isinstance(sandbox, dict):
        raise UsageError(f"{where}: [sandbox] must be a table; see targets/README.md")
    _reject_unknown(sandbox, _SANDBOX_KEYS, f"{where} [sandbox]")
    for key in sorted(_SANDBOX_KEYS):
        if not isinstance(sandbox.get(key, False), bool):
            raise UsageError(f"{where}: [sandbox] {key} must be true or false")

    mutable = _strings(data, "mutable", where, required=True)
    for rel in mutable:
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise UsageError(f"{where}: mutable file {rel!r} must be a path inside the target")
        if not (root / rel).is_file():
            raise UsageError(f"mutable file {root / rel} is missing; create it or fix 'mutable'")

    direction = _string(metric, "direction", f"{where} [metric]")
    if direction not in DIRECTIONS:
        raise UsageError(
            f"{where} [metric]: direction {direction!r} is unknown; use 'minimize' or 'maximize'"
        )
    budget_seconds = _positive(budget, "seconds", f"{where} [budget]")
    timeout_seconds = _positive(budget, "timeout_seconds", f"{where} [budget]")
    if timeout_seconds <= budget_seconds:
        raise UsageError(
            f"{where} [budget]: timeout_seconds ({timeout_seconds:g}) must exceed seconds "
            f"({budget_seconds:g}) to leave time for start-up and evaluation"
        )

    screen = budget.get("screen", 0.0)
    if isinstance(screen, bool) or not isinstance(screen, int | float) or not 0 <= screen < 1:
        raise UsageError(
            f"{where} [budget]: screen must be a fraction of the budget from 0 (none) to below 1"
        )

    instructions = data.get("instructions")
    if instructions is not None and not (root / str(instructions)).is_file():
        raise UsageError(f"instructions file {root / str(instructions)} is missing; create it")

    choices = data.get("choices", {})
    if not isinstance(choices, dict) or not all(
        isinstance(v, list) and len(v) >= 2 and all(isinstance(x, str | int | float) for x in v)
        for v in choices.values()
    ):
        raise UsageError(f"{where}: [choices] must map names to lists of 2 or more values")

    return Target(
        name=_string(data, "name", where),
        root=root.resolve(),
        mutable=mutable,
        entry=_entry_argv(_string(data, "entry", where)),
        metric=_string(metric, "name", f"{where} [metric]"),
        direction=direction,
        budget_seconds=budget_seconds,
        timeout_seconds=timeout_seconds,
        description=str(data.get("description", "")),
        instructions=str(instructions) if instructions is not None else None,
        rules=Rules(
            required_names=_strings(rules, "required_names", f"{where} [rules]"),
            forbidden_imports=_strings(rules, "forbidden_imports", f"{where} [rules]"),
            forbidden_names=_strings(rules, "forbidden_names", f"{where} [rules]"),
        ),
        choices={name: tuple(values) for name, values in choices.items()},
        network=sandbox.get("network", False),
        prewarm=sandbox.get("prewarm", False),
        screen=float(screen),
        measure=_measure(data, root, where),
    )


def _measure(data: dict[str, Any], root: Path, where: str) -> Measure | None:
    if "measure" not in data:
        return None
    table, where = data["measure"], f"{where} [measure]"
    if not isinstance(table, dict):
        raise UsageError(f"{where} must be a table; see targets/README.md")
    _reject_unknown(table, _MEASURE_KEYS, where)
    folders = {}
    for key, base in (("held_out", root), ("held_out_cache", None)):
        folders[key] = _strings(table, key, where)
        for rel in folders[key]:
            if Path(rel).is_absolute() or ".." in Path(rel).parts or rel in (".", ""):
                raise UsageError(f"{where}: {key} {rel!r} must be a folder path inside it")
            if base is not None and not (base / rel).is_dir():
                raise UsageError(f"{where}: held_out folder {base / rel} is missing; create it")
    prepare = table.get("prepare")
    return Measure(
        entry=_entry_argv(_string(table, "entry", where)),
        prepare=_entry_argv(_string(table, "prepare", where)) if prepare is not None else (),
        held_out=folders["held_out"],
        held_out_cache=folders["held_out_cache"],
        handoff_seconds=_positive(table, "handoff_seconds", where)
        if "handoff_seconds" in table
        else Measure.handoff_seconds,
    )


def _entry_argv(entry: str) -> tuple[str, ...]:
    # "python" means the interpreter evo runs under, so the variant sees the same packages.
    argv = shlex.split(entry)
    if argv and argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    return tuple(argv)


def _reject_unknown(table: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise UsageError(
            f"{where}: unknown key {unknown[0]!r}; known keys are {', '.join(sorted(known))}"
        )


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise UsageError(f"{where}: the [{key}] table is missing; see targets/README.md")
    return value


def _string(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{where}: '{key}' must be a non-empty string")
    return value


def _strings(data: dict[str, Any], key: str, where: str, required: bool = False) -> tuple[str, ...]:
    value = data.get(key, None if required else [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise UsageError(f"{where}: '{key}' must be a list of strings")
    if required and not value:
        raise UsageError(f"{where}: '{key}' must name at least one file")
    return tuple(value)


def _positive(data: dict[str, Any], key: str, where: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise UsageError(f"{where}: '{key}' must be a number of seconds > 0")
    return float(value)
