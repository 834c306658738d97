"""Run one evaluation of one variant in a fresh, killable subprocess.

What is covered:
- A fresh working copy per evaluation: a temporary folder holding the target's fixed files and
  the variant's mutable files. The target folder itself is never written, and the copy is
  deleted afterwards.
- A fresh process per evaluation, in a process group of its own. Past the hard timeout the whole
  group gets SIGKILL, which children that ignore SIGTERM cannot refuse; the group is killed again
  after a normal exit so that no child outlives its evaluation. A fresh process also returns all
  GPU memory to the driver.
- An environment built from an allow-list (PATH, locale, CUDA and BLAS settings, ...), minus
  anything that looks like a credential, plus the protocol's EVO_* variables. No API key of ours
  reaches a variant.
- The metric comes from the target's fixed part through a result file (evo.target.protocol);
  what the variant prints is kept for diagnosis only and never parsed.
- `--device cpu` hides every GPU (CUDA_VISIBLE_DEVICES is set empty).

What is not covered:
- This is not a security boundary. The variant runs as the same user, with the same file system
  and network. A process that calls setsid() leaves the process group and survives the kill;
  Python code that reads files can find the result channel or the fixed files. The target's
  static rules (forbidden imports and names) keep honest-but-careless LLM code away from these;
  for code from models you do not trust, add OS isolation: a container or VM with no network
  and no credentials, and a memory limit.
- Memory is not capped: a variant can exhaust the machine's memory (the OOM killer's SIGKILL is
  then reported as a crash).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import evo
from evo.errors import UsageError
from evo.evaluate.result import EvalResult, classify
from evo.status import Status
from evo.target import Target, protocol
from evo.target.rules import violations

DEVICES = ("auto", "cpu", "cuda")
STDERR_TAIL_CHARS = 4000

_PASSED_NAMES = {"PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TERM", "TMPDIR", "SHELL"}
_PASSED_PREFIXES = (
    "LC_",
    "LD_LIBRARY_PATH",
    "CUDA_",
    "NVIDIA_",
    "OPENBLAS_",
    "MKL_",
    "TORCHINDUCTOR_",
    "TRITON_",
)
_SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL", "AUTH")
_NOT_COPIED = shutil.ignore_patterns("__pycache__", ".*")


def resolve_device(device: str) -> str:
    """Turn a user's choice into "cpu" or "cuda"; "auto" takes CUDA where torch sees a GPU."""
    if device not in DEVICES:
        raise UsageError(f"unknown device {device!r}; use one of: {', '.join(DEVICES)}")
    if device == "cpu":
        return "cpu"
    import torch  # only here: the CPU path needs no torch in evo's own process

    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise UsageError("device cuda was asked for but torch sees no CUDA GPU; use --device cpu")
    return "cpu"


def evaluate(
    target: Target,
    sources: dict[str, str] | None = None,
    *,
    budget_seconds: float | None = None,
    timeout_seconds: float | None = None,
    device: str = "cpu",
    seed: int = 0,
    threads: int | None = None,
    cache_dir: Path | None = None,
    check_rules: bool = True,
) -> EvalResult:
    """Evaluate one variant of `target` and return its result; never raises for a bad variant.

    sources: mutable file (relative path) -> source text; files not given keep the target's own.
    budget_seconds / timeout_seconds: default to the target's (the timeout moves with the budget).
    device: "cpu" or "cuda" (already resolved; see resolve_device).
    check_rules: refuse a variant that breaks the target's static rules without running it.
        Only tests of the sandbox itself, which must hold even behind broken rules, turn it off.
    """
    unknown = sorted(set(sources or {}) - set(target.mutable))
    if unknown:
        raise UsageError(
            f"{unknown[0]} is not a mutable file of target {target.name}; "
            f"its mutable files are: {', '.join(target.mutable)}"
        )
    budget = target.budget_seconds if budget_seconds is None else budget_seconds
    timeout = target.timeout_for(budget) if timeout_seconds is None else timeout_seconds
    if budget <= 0 or timeout <= 0:
        raise UsageError("the budget and the timeout must be > 0 seconds")
    threads = threads or os.cpu_count() or 1
    problems = (
        violations(target.rules, target.read_mutable() | (sources or {})) if check_rules else []
    )
    common = {
        "metric_name": target.metric,
        "seed": seed,
        "device": device,
        "budget_seconds": float(budget),
    }
    if problems:
        return EvalResult(
            status=Status.INVALID,
            metric=None,
            train_seconds=None,
            wall_seconds=0.0,
            peak_rss_mb=None,
            reason="static rules: " + "; ".join(problems),
            **common,
        )

    with tempfile.TemporaryDirectory(prefix="evo-eval-") as scratch_name:
        scratch = Path(scratch_name)
        work = scratch / "work"
        shutil.copytree(target.root, work, ignore=_NOT_COPIED)
        for rel, text in (sources or {}).items():
            (work / rel).write_text(text)
        channel = scratch / secrets.token_hex(8)
        channel.mkdir()
        env = child_environment(
            {
                protocol.BUDGET_SECONDS: repr(float(budget)),
                protocol.DEVICE: device,
                protocol.SEED: str(seed),
                protocol.THREADS: str(threads),
                protocol.CACHE_DIR: str(cache_dir or protocol.DEFAULT_CACHE_DIR),
                protocol.RESULT_PATH: str(channel / "result.json"),
            },
            device=device,
            threads=threads,
        )
        started = time.monotonic()
        exit_code, timed_out, peak_rss_mb = run_process(target.entry, work, env, scratch, timeout)
        wall_seconds = time.monotonic() - started
        stderr_tail = _tail(scratch / "stderr.log")
        reported = _read_report(channel / "result.json")

    status, metric, reason = classify(reported, exit_code, timed_out, stderr_tail)
    reported = reported or {}
    train_seconds = reported.get("train_seconds")
    details = {
        key: value
        for key, value in reported.items()
        if key not in ("status", "metric", "reason", "train_seconds")
    }
    return EvalResult(
        status=status,
        metric=metric,
        train_seconds=float(train_seconds) if isinstance(train_seconds, int | float) else None,
        wall_seconds=wall_seconds,
        peak_rss_mb=peak_rss_mb,
        reason=reason,
        stderr_tail="" if status == Status.OK else stderr_tail,
        details=details,
        **common,
    )


def child_environment(extra: dict[str, str], device: str, threads: int) -> dict[str, str]:
    """The variant's environment: an allow-list of ours, no credentials, and the request."""
    env = {
        name: value
        for name, value in os.environ.items()
        if (name in _PASSED_NAMES or name.startswith(_PASSED_PREFIXES))
        and not any(marker in name.upper() for marker in _SECRET_MARKERS)
    }
    # evo's own folder, so that a target's fixed part can import evo.target.protocol.
    env["PYTHONPATH"] = str(Path(evo.__file__).resolve().parent.parent)
    env["PYTHONUNBUFFERED"] = "1"
    env["OMP_NUM_THREADS"] = str(threads)
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    env.update(extra)
    return env


def run_process(
    argv: tuple[str, ...], cwd: Path, env: dict[str, str], logs: Path, timeout: float
) -> tuple[int, bool, float | None]:
    """Run argv in its own process group; return (exit code, timed out, peak RSS in MB)."""
    with open(logs / "stdout.log", "wb") as out, open(logs / "stderr.log", "wb") as err:
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        except OSError as e:
            raise UsageError(
                f"cannot start the entry command {argv[0]!r} ({e}); fix 'entry'"
            ) from None
    deadline = time.monotonic() + timeout
    delay = 0.001
    timed_out = False
    peak_rss_mb = None
    try:
        while proc.poll() is None:
            peak_rss_mb = _peak_rss_mb(proc.pid) or peak_rss_mb
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                _kill_group(proc.pid)
                proc.wait()
                break
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.01)
    finally:
        _kill_group(proc.pid)  # on exit: children the variant left behind; on error: everything
        proc.wait()
    return proc.returncode, timed_out, peak_rss_mb


def _peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident memory so far (Linux), or None where it cannot be read.

    Read from /proc while it runs, not from wait4's ru_maxrss: that one also counts the memory
    of evo's own process, which the child shared before it exec'd the entry command.
    """
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # nothing left to kill
        os.killpg(pgid, signal.SIGKILL)


def _tail(path: Path) -> str:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 4 * STDERR_TAIL_CHARS))
        return f.read().decode(errors="replace")[-STDERR_TAIL_CHARS:]


def _read_report(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        reported = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {"status": "malformed"}
    return reported if isinstance(reported, dict) else {"status": "malformed"}
