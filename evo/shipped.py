"""What ships beside the package in its checkout: the targets and the island presets.

The one place that knows where the repository is. evo installed from a wheel has no checkout:
then targets and presets are given by path, and the names below say so in one line.
"""

from __future__ import annotations

from pathlib import Path

from evo.errors import UsageError

# The folder holding evo/, targets/ and islands/ when evo runs from its checkout.
CHECKOUT = Path(__file__).resolve().parent.parent
DEFAULT_TARGET = "gpt"


def default_target() -> Path:
    """The shipped gpt target."""
    path = CHECKOUT / "targets" / DEFAULT_TARGET
    if not (path / "target.toml").is_file():
        raise UsageError(
            "no target given, and this evo has no shipped targets (it is not run from its "
            "checkout): pass a target folder, e.g. --target path/to/target"
        )
    return path


def preset_path(name: str) -> Path:
    """A preset by path (a .toml file), or by name in the checkout's islands/."""
    path = Path(name)
    if path.suffix != ".toml":
        path = CHECKOUT / "islands" / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in (CHECKOUT / "islands").glob("*.toml")))
        choice = f"one of: {known}" if known else "a preset's path (no presets ship here)"
        raise UsageError(f"preset {name} does not exist; use a .toml file or {choice}")
    return path
