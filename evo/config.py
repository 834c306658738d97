"""The configuration of a run: defaults, presets (islands/*.toml), a TOML file, CLI overrides.

Every field has a documented default that works on a fresh CPU machine with no key and no
network. The effective configuration is saved in the run folder, and a resumed run reads it back.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from evo.errors import UsageError

ISLANDS_DIR = Path(__file__).resolve().parent.parent / "islands"


@dataclass(frozen=True)
class RunConfig:
    """What one run does.

    target: the target folder.
    islands: number of islands; each holds its own population, history and RNG.
    population: programs kept per island (elitist: a better program replaces the worst).
    evaluators: evaluator actors; 0 means one per GPU, or one on a machine without GPUs.
    gpus_per_eval: GPUs reserved by each evaluator when GPUs are used (fractions allowed).
    budget: training budget per evaluation in seconds; 0 means the target's.
    max_evals / max_hours / max_cost: stop conditions (0 = no limit); the first reached wins.
        Evaluations include the seed program's noise measurement.
    operator: auto (anthropic with ANTHROPIC_API_KEY, else offline), offline, anthropic, openai.
    tournament: parent selection draws this many members and takes the best.
    explore: share of parents drawn uniformly instead, to keep weaker lines alive.
    migration_interval: evaluations between migrations around the ring; 0 disables them.
    migration_count: best programs each island sends to the next.
    stagnation: an island whose best has not improved in this many of its evaluations is
        reset from the best of the others; 0 disables resets.
    noise_repeats: evaluations of the seed program (different seeds) that measure the noise.
    noise_k: a candidate must beat the best by k standard deviations (of the mean) to replace it.
    max_repeats: evaluations a candidate may get before its fate is decided.
    checkpoint_every: evaluations between checkpoints, at most one every 2 s (also on exit).
    seed: drives every random choice of the run.
    out: where run folders are created.
    address: a Ray cluster to join ("auto" for the local one); empty starts a Ray of our own.
    """

    target: str = str(Path(__file__).resolve().parent.parent / "targets" / "gpt")
    islands: int = 4
    population: int = 8
    evaluators: int = 0
    gpus_per_eval: float = 1.0
    budget: float = 0.0
    max_evals: int = 40
    max_hours: float = 0.0
    max_cost: float = 0.0
    operator: str = "auto"
    tournament: int = 2
    explore: float = 0.2
    migration_interval: int = 10
    migration_count: int = 1
    stagnation: int = 30
    noise_repeats: int = 3
    noise_k: float = 2.0
    max_repeats: int = 3
    checkpoint_every: int = 5
    seed: int = 0
    out: str = "runs"
    address: str = ""

    def with_overrides(self, overrides: dict[str, Any], where: str) -> RunConfig:
        known = {f.name: f for f in fields(self)}
        values = asdict(self)
        for key, value in overrides.items():
            key = key.replace("-", "_")
            if key not in known:
                raise UsageError(f"{where}: unknown setting {key!r}; known: {', '.join(known)}")
            default = values[key]
            if (
                isinstance(default, float)
                and isinstance(value, int)
                and not isinstance(value, bool)
            ):
                value = float(value)
            if type(value) is not type(default):
                raise UsageError(
                    f"{where}: {key} must be a {type(default).__name__}, not {value!r}"
                )
            values[key] = value
        config = RunConfig(**values)
        config.check()
        return config

    def check(self) -> None:
        positive = (
            "islands",
            "population",
            "tournament",
            "noise_repeats",
            "max_repeats",
            "checkpoint_every",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be at least 1, not {getattr(self, name)}")
        for name in (
            "evaluators",
            "budget",
            "max_evals",
            "max_hours",
            "max_cost",
            "migration_interval",
            "stagnation",
            "migration_count",
        ):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must be >= 0, not {getattr(self, name)}")
        if not 0 <= self.explore <= 1:
            raise UsageError(f"explore must be between 0 and 1, not {self.explore}")
        if not self.gpus_per_eval > 0:
            raise UsageError(f"gpus_per_eval must be > 0, not {self.gpus_per_eval}")
        if not (self.max_evals or self.max_hours or self.max_cost):
            raise UsageError("set a stop condition: --max-evals, --max-hours or --max-cost")

    def to_toml(self) -> str:
        lines = []
        for key, value in asdict(self).items():
            text = f'"{value}"' if isinstance(value, str) else str(value).lower()
            text = text if not isinstance(value, float) else repr(value)
            lines.append(f"{key} = {text}")
        return "\n".join(lines) + "\n"


def read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UsageError(f"config file {path} does not exist; pass an existing .toml file")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path} is not valid TOML ({e}); fix the syntax there") from None


def preset_path(name: str) -> Path:
    """A preset by path, or by name in islands/ (`ring`, `explore`, `single-chain`)."""
    path = Path(name)
    if path.suffix != ".toml":
        path = ISLANDS_DIR / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in ISLANDS_DIR.glob("*.toml")))
        raise UsageError(f"preset {name} does not exist; use a .toml file or one of: {known}")
    return path
