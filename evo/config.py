"""The configuration of a run, declared once: defaults, presets, a TOML file, `evo run` flags.

Each setting is a field of one of the frozen dataclasses below, with its default and its help
text. TOML files mirror them (top-level keys, then the tables [search], [evaluation], [limits]
and [llm]); `evo run` has one flag per field, generated from them (`--max-evals` sets
limits.max_evals). Every default works on a fresh CPU machine with no key and no network. The
effective configuration is saved in the run folder, and a resumed run reads it back.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from evo.errors import UsageError

OPERATORS = ("auto", "offline", "anthropic", "openai")
ISOLATION_LEVELS = ("auto", "namespace", "process")  # evo.evaluate.isolation
OPENAI_NEEDS_URL = "the openai operator needs --base-url (e.g. http://127.0.0.1:8000/v1)"


def setting(default: Any, help: str, kind: type | None = None) -> Any:
    """A field with its help text; `kind` where the default (None) does not tell the type."""
    return field(default=default, metadata={"help": help, "kind": kind or type(default)})


@dataclass(frozen=True)
class SearchConfig:
    """[search]: islands, selection and the noise."""

    islands: int = setting(4, "number of islands; each holds its own population, history and RNG")
    start_islands: int = setting(
        1, "islands open at first, one more when all went `patience` evals unimproved; 0: all"
    )
    population: int = setting(8, "programs kept per island (a better one replaces the worst)")
    tournament: int = setting(2, "parent selection draws this many members and takes the best")
    explore: float = setting(0.2, "share of parents drawn uniformly instead")
    crossover: float = setting(
        0.0, "share of proposals that combine the parent with a second one (recombination)"
    )
    patience: int = setting(
        20,
        "an island's parent is its champion until this many of its evaluations bring no gain, "
        "then drawn by tournament; 0: always by tournament",
    )
    migration_interval: int = setting(10, "an island's evaluations between its migrations; 0: none")
    migration_count: int = setting(1, "best programs each island sends to the next")
    stagnation: int = setting(30, "reset an island not improved in this many of its evals; 0: no")
    carry_gains: bool = setting(
        True, "merge a change that beat its parent into its island's newer champion (evo.run.carry)"
    )
    noise_repeats: int = setting(
        3, "evaluations of the seed program that measure the noise (its children use the rest)"
    )
    noise_k: float = setting(0.0, "a new champion's paired gain must exceed k sigma/sqrt(n)")
    max_repeats: int = setting(3, "evaluations a candidate may get before its fate is decided")
    min_repeats: int = setting(2, "evaluations a new champion needs (its gain held on a 2nd seed)")
    sure_k: float = setting(3.0, "crown a gain past k sigma/sqrt(n) before min_repeats; 0: never")
    surprise_k: float = setting(10.0, "crown a gain past k sigma once 2 fresh seeds hold it")


@dataclass(frozen=True)
class EvaluationConfig:
    """[evaluation]: the evaluator actors and what each evaluation gets."""

    evaluators: int = setting(0, "evaluator actors; 0: one per GPU, or one without GPUs")
    gpus_per_eval: float = setting(1.0, "GPUs reserved by each evaluator, fractions allowed")
    budget: float = setting(0.0, "training budget per evaluation in seconds; 0: the target's")
    isolation: str = setting(
        "auto",
        "namespace (Linux: each evaluation in its own PID, mount and network namespaces), "
        "process (a process group), or auto: namespace where the machine allows it",
    )
    prewarm: str = setting(
        "auto",
        "start the next candidate while the current one trains, for targets whose fixed part "
        "calls protocol.ready(): on, off, or auto (on with GPUs, off on CPU where the two "
        "compete for the cores)",
    )
    screen: float | None = setting(
        None,
        "screen each candidate at this fraction of the budget first, and evaluate it in full "
        "only if not behind its parent there (evo.run.screen); 0: off; default: the target's",
        float,
    )
    confirm: int = setting(0, "at the end, measure the best N and the seed on 3 fresh seeds")
    memory_gb: float = setting(
        0.0,
        "memory cap per evaluation in GiB; 0: 0.9 of the machine's memory, shared by the "
        "evaluations that run on it at once",
    )


@dataclass(frozen=True)
class LimitsConfig:
    """[limits]: when the run stops (0: no limit); the first reached wins."""

    max_evals: int = setting(40, "stop after this many evaluations, the seed's included")
    max_hours: float = setting(0.0, "stop after this many hours")
    max_cost: float = setting(0.0, "stop once the operator has spent this many USD")


@dataclass(frozen=True)
class LLMSettings:
    """[llm]: the mutation operator and, for an LLM, its models and server."""

    operator: str = setting(
        "auto",
        "auto (anthropic with ANTHROPIC_API_KEY, else offline), offline, anthropic or openai",
    )
    models: tuple[str, ...] = setting(
        (), "a model NAME[:WEIGHT] of the ensemble, repeatable (default: haiku 0.7, sonnet 0.3)"
    )
    base_url: str = setting("", "the model server (required for openai)")
    temperature: float | None = setting(None, "sampling temperature (the model's own)", float)
    max_tokens: int = setting(4096, "reply length cap in tokens")
    adaptive_models: bool = setting(
        False,
        "choose each proposal's model by what the models' proposals earned per dollar so far "
        "(Thompson sampling, evo.mutate.ensemble) instead of by the fixed weights",
    )


@dataclass(frozen=True)
class RunConfig:
    """What one run does."""

    target: str = setting("", "target folder (default: the shipped gpt target)")
    seed: int = setting(0, "seed of every random choice of the run")
    out: str = setting("runs", "where run folders are created")
    address: str = setting("", "a Ray cluster to join (auto: the local one); empty: start one")
    checkpoint_every: int = setting(5, "evaluations between checkpoints, at most one every 2 s")
    search: SearchConfig = field(default_factory=SearchConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    llm: LLMSettings = field(default_factory=LLMSettings)

    def with_tables(self, tables: dict[str, Any], where: str) -> RunConfig:
        """These settings with those of a TOML document (top-level keys, then tables)."""
        values: dict[str, Any] = {}
        for f in fields(self):
            if f.name not in tables:
                continue
            if f.name in SECTIONS:
                section = tables[f.name]
                if not isinstance(section, dict):
                    raise UsageError(f"{where}: {f.name} must be a table, [{f.name}]")
                values[f.name] = _with(getattr(self, f.name), section, f"{where} [{f.name}]")
            else:
                values[f.name] = _checked(f, tables[f.name], where)
        unknown = sorted(set(tables) - {f.name for f in fields(self)})
        misplaced = [name for name in unknown if name in SETTINGS]
        if misplaced:  # e.g. a config file of an older evo, whose settings were all top-level
            section = SETTINGS[misplaced[0]][0]
            raise UsageError(
                f"{where}: {misplaced[0]} belongs in the [{section}] table; put it there"
            )
        if unknown:
            known = ", ".join(f.name for f in fields(self))
            raise UsageError(f"{where}: unknown setting {unknown[0]!r}; known: {known}")
        config = replace(self, **values)
        config.check()
        return config

    def with_settings(self, settings: dict[str, Any], where: str) -> RunConfig:
        """These settings with others named by their field alone (`max_evals`, as the flags)."""
        tables: dict[str, Any] = {}
        for name, value in settings.items():
            name = name.replace("-", "_")
            if name not in SETTINGS:
                known = ", ".join(SETTINGS)
                raise UsageError(f"{where}: unknown setting {name!r}; known: {known}")
            section, _ = SETTINGS[name]
            (tables.setdefault(section, {}) if section else tables)[name] = value
        return self.with_tables(tables, where)

    def flat(self) -> dict[str, Any]:
        """Every setting by its field name alone."""
        return {
            name: getattr(getattr(self, section) if section else self, name)
            for name, (section, _) in SETTINGS.items()
        }

    def check(self) -> None:
        s, e, lim = self.search, self.evaluation, self.limits
        for name in ("islands", "population", "tournament", "noise_repeats", "min_repeats"):
            _at_least(name, getattr(s, name), 1)
        if s.min_repeats > s.max_repeats:
            raise UsageError(
                f"min_repeats ({s.min_repeats}) must not exceed max_repeats ({s.max_repeats})"
            )
        _at_least("checkpoint_every", self.checkpoint_every, 1)
        if not 0 <= s.start_islands <= s.islands or (s.start_islands and not s.patience):
            raise UsageError(
                f"start_islands ({s.start_islands}) must be 0 (all) or up to islands "
                f"({s.islands}), with patience set: e.g. --start-islands 1 --patience 10"
            )
        for name, value, high in (("explore", s.explore, 1), ("crossover", s.crossover, 1),
                                  ("screen", e.screen or 0, 0.99)):  # fmt: skip
            if not 0 <= value <= high:
                raise UsageError(f"{name} must be a fraction from 0 to {high}, not {value}")
        for name, value in {**asdict(s), **asdict(e), **asdict(lim)}.items():
            if not isinstance(value, str | None):
                _at_least(name, value, 0)
        _one_of("prewarm", e.prewarm, ("auto", "on", "off"))
        _one_of("isolation", e.isolation, ISOLATION_LEVELS)
        if not e.gpus_per_eval > 0:
            raise UsageError(f"gpus_per_eval must be > 0, not {e.gpus_per_eval}")
        if not (lim.max_evals or lim.max_hours or lim.max_cost):
            raise UsageError("set a stop condition: --max-evals, --max-hours or --max-cost")
        _one_of("operator", self.llm.operator, OPERATORS)
        for spec in self.llm.models:
            model_weight(spec)
        if self.llm.operator == "openai" and not self.llm.models:
            raise UsageError("the openai operator needs --model NAME (the server's model name)")
        if self.llm.operator == "openai" and not self.llm.base_url:
            raise UsageError(OPENAI_NEEDS_URL)
        if self.llm.operator == "offline" and self.llm.adaptive_models:
            raise UsageError(
                "--adaptive-models chooses among an LLM's models and the offline operator has "
                "none; leave it out, or use --operator anthropic or openai"
            )

    def to_toml(self) -> str:
        lines = [_toml_line(k, v) for k, v in asdict(self).items() if k not in SECTIONS]
        for section in SECTIONS:
            lines += ["", f"[{section}]"]
            lines += [_toml_line(k, v) for k, v in asdict(getattr(self, section)).items()]
        return "\n".join(line for line in lines if line is not None) + "\n"


SECTION_TYPES = {
    "search": SearchConfig,
    "evaluation": EvaluationConfig,
    "limits": LimitsConfig,
    "llm": LLMSettings,
}
SECTIONS = tuple(SECTION_TYPES)
# Every setting's field, and its table ("" for the top level), by its name: the names are unique.
SETTINGS = {f.name: ("", f) for f in fields(RunConfig) if f.name not in SECTIONS} | {
    f.name: (section, f) for section, kind in SECTION_TYPES.items() for f in fields(kind)
}


def model_weight(spec: str) -> tuple[str, float]:
    """`NAME[:WEIGHT]` as (name, weight); weight 1 when not given."""
    name, _, weight = spec.partition(":")
    try:
        value = float(weight or 1.0)
    except ValueError:
        value = -1.0
    if not name or value <= 0:
        raise UsageError(f"model {spec!r}: write NAME or NAME:WEIGHT with a weight above 0")
    return name, value


def _with(section: Any, values: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(section)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise UsageError(f"{where}: unknown setting {unknown[0]!r}; known: {', '.join(known)}")
    return replace(section, **{k: _checked(known[k], v, where) for k, v in values.items()})


def _checked(f: Any, value: Any, where: str) -> Any:
    kind = f.metadata["kind"]
    if value is None and f.default is None:
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is tuple and isinstance(value, list | tuple):
        value = tuple(value)
        if all(isinstance(v, str) for v in value):
            return value
    elif isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool):
        return value
    wanted = "list of strings" if kind is tuple else kind.__name__
    raise UsageError(f"{where}: {f.name} must be a {wanted}, not {value!r}")


def _at_least(name: str, value: float, low: int) -> None:
    if value < low:
        relation = f"at least {low}" if low else ">= 0"
        raise UsageError(f"{name} must be {relation}, not {value}")


def _one_of(name: str, value: str, known: tuple[str, ...]) -> None:
    if value not in known:
        raise UsageError(f"unknown {name} {value!r}; use one of: {', '.join(known)}")


def _toml_line(key: str, value: Any) -> str | None:
    if value is None:  # absent: the default
        return None
    if isinstance(value, str):
        return f"{key} = {_quoted(value)}"
    if isinstance(value, tuple | list):
        return f"{key} = [{', '.join(_quoted(v) for v in value)}]"
    if isinstance(value, bool):
        return f"{key} = {str(value).lower()}"
    return f"{key} = {value!r}"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UsageError(f"config file {path} does not exist; pass an existing .toml file")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path} is not valid TOML ({e}); fix the syntax there") from None
