"""`python -m evo`: the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import evo
from evo.errors import UsageError

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
    ev.add_argument(
        "target",
        nargs="?",
        type=Path,
        default=DEFAULT_TARGET,
        help="target folder holding target.toml (default: the shipped gpt target)",
    )
    ev.add_argument(
        "--file",
        action="append",
        default=[],
        metavar="[REL=]PATH",
        help="a variant of a mutable file; REL= names which one when the target has several",
    )
    ev.add_argument("--budget", type=float, help="training budget in seconds (default: target's)")
    ev.add_argument("--timeout", type=float, help="hard timeout in seconds (default: target's)")
    ev.add_argument("--device", default="auto", help="cpu, cuda or auto (default: auto)")
    ev.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    ev.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    ev.add_argument("--json", action="store_true", help="print the whole result record as JSON")
    ev.set_defaults(handler=_eval)
    return parser


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


def _eval(args: argparse.Namespace) -> int:
    from evo.sandbox import evaluate, resolve_device
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
