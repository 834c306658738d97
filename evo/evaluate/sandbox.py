"""Run one evaluation of one variant in a fresh, killable subprocess, isolated as far as the
machine allows (evo.evaluate.isolation has the levels).

What is covered, at every level:
- A fresh working copy per evaluation: a temporary folder holding the target's fixed files and
  the variant's mutable files. The target folder itself is never written, and the copy is
  deleted afterwards.
- A fresh process per evaluation, in a process group of its own. Past the hard timeout the whole
  group gets SIGKILL, which children that ignore SIGTERM cannot refuse; the group is killed again
  after a normal exit. A fresh process also returns all GPU memory to the driver.
- An environment built from an allow-list (PATH, locale, CUDA and BLAS settings, ...), minus
  anything that looks like a credential, plus the protocol's EVO_* variables. A run also keeps
  credentials out of its evaluators and Ray's daemons (evo.run.credentials).
- A memory cap (evo.evaluate.memory): an evaluation that reaches it is `oom`.
- The metric comes from the target's fixed part through a result file (evo.target.protocol);
  what the variant prints is kept for diagnosis only and never parsed.
- `--device cpu` hides every GPU (CUDA_VISIBLE_DEVICES is set empty).

At the namespace level (Linux, the default where it works), besides:
- Every process the variant starts dies with the evaluation, `setsid` and double forks
  included; /proc shows only the evaluation's own processes (no other process's environment).
- Read-only everywhere but the working copy, a private /tmp and /dev/shm, and the target's cache
  folder (for a target in two phases, only evo's compile caches there, and its held-out folders
  empty: evo.evaluate.phases); the fixed files read-only in the working copy; loopback only,
  unless the target's `[sandbox] network = true`; no capabilities.

What is not covered:
- At the process level: a variant can read other processes' environments and files, write
  anywhere the user can, reach the network, and leave behind processes that call setsid().
- At both: the variant runs as the same user (as root of its own user namespace at the namespace
  level), can read whatever that user can read (the fixed files, and in a target measured in
  one process the result channel's folder if it finds it: the target's static rules keep
  honest-but-careless code away from these, not a determined adversary), and
  shares the GPUs it was given, whose memory the operating system cannot cap. It is not a
  defence against kernel exploits: for code from models you do not trust at all, run the
  evaluators in a VM.
"""

from __future__ import annotations

import getpass
import os
import tempfile
import threading
from pathlib import Path

import evo
from evo.errors import UsageError
from evo.evaluate.allowance import Allowance
from evo.evaluate.memory import cap, default_cap
from evo.evaluate.phases import COMPILE, JAILED_ENVIRONMENT, Runner, run_phase, two_phases
from evo.evaluate.result import EvalResult
from evo.status import Status
from evo.target import Target, protocol
from evo.target.rules import violations

DEVICES = ("auto", "cpu", "cuda")

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
SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL", "AUTH")


def looks_secret(name: str) -> bool:
    """Whether an environment variable's name says it holds a secret."""
    return any(marker in name.upper() for marker in SECRET_MARKERS)


# torch.compile's caches, shared by the evaluations on a machine: a candidate whose graphs did
# not change does not compile them again (its first step is then short; see the details).
COMPILE_CACHES = {"TORCHINDUCTOR_CACHE_DIR": "inductor", "TRITON_CACHE_DIR": "triton"}


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
    isolation: str = "process",
    memory_bytes: int | None = None,
    turn: threading.Lock | None = None,
    allowance: Allowance | None = None,
) -> EvalResult:
    """Evaluate one variant of `target` and return its result; never raises for a bad variant.

    sources: mutable file (relative path) -> source text; files not given keep the target's own.
    budget_seconds / timeout_seconds: default to the target's (the timeout moves with the budget).
    device: "cpu" or "cuda" (already resolved; see resolve_device).
    isolation: "namespace" or "process" (already resolved; see evo.evaluate.isolation.resolve).
    memory_bytes: the memory cap; None: evo.evaluate.memory.default_cap(), 0: none.
    turn: the evaluator's lock, held while one of its evaluations trains; a target with pre-warm
        starts before its turn (evo.evaluate.process.run_process).
    allowance: what the run measured of its seed program (evo.evaluate.allowance): the hard
        timeout and the training clock's grace follow it; None: the target's timeout.
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
    if timeout_seconds is not None:
        timeout = timeout_seconds
    else:
        timeout = (allowance or target).timeout_for(budget)
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

    cache = Path(cache_dir or protocol.DEFAULT_CACHE_DIR)
    (cache / COMPILE).mkdir(parents=True, exist_ok=True)
    request = {
        protocol.BUDGET_SECONDS: repr(float(budget)),
        protocol.DEVICE: device,
        protocol.SEED: str(seed),
        protocol.THREADS: str(threads),
        protocol.CACHE_DIR: str(cache),
        **{name: str(cache / COMPILE / sub) for name, sub in COMPILE_CACHES.items()},
    }
    prewarm = turn is not None and target.prewarm
    if prewarm:
        # Two processes share the evaluator's CPUs (one trains, one sets up): OpenMP threads
        # that spin while they wait would slow both down many times over.
        request["OMP_WAIT_POLICY"] = "PASSIVE"
    runner = Runner(
        isolation,
        target.network,
        cap(default_cap() if memory_bytes is None else memory_bytes, device),
        lambda extra: child_environment(extra, device=device, threads=threads),
        timeout,
        shared_temporary(cache),
    )
    with tempfile.TemporaryDirectory(prefix="evo-eval-") as scratch_name:
        scratch = Path(scratch_name)
        run = run_phase(target, sources or {}, scratch, cache, request, prewarm)
        try:
            if target.measure is None:
                outcomes = [runner.run(run, turn=turn, prewarm=prewarm)]
            else:
                outcomes = two_phases(
                    target, run, scratch, cache, runner, turn, prewarm, budget, allowance
                )
        finally:
            runner.memory.close()

    last, ran = outcomes[-1], outcomes[-2 if len(outcomes) > 1 else -1]
    details = {
        key: value
        for outcome in outcomes
        for key, value in outcome.reported.items()
        if key not in ("status", "metric", "reason", "train_seconds")
    }
    if target.measure is None:
        train_seconds = last.reported.get("train_seconds")
    else:  # evo's clock, not what the run phase says of itself
        train_seconds = ran.ended.trained_seconds
    peaks = [o.ended.peak_rss_mb for o in outcomes if o.ended.peak_rss_mb is not None]
    return EvalResult(
        status=last.status,
        metric=last.metric,
        train_seconds=float(train_seconds) if isinstance(train_seconds, int | float) else None,
        wall_seconds=sum(o.wall_seconds for o in outcomes),
        peak_rss_mb=max(peaks, default=None),
        reason=last.reason,
        stderr_tail="" if last.status == Status.OK else last.stderr_tail,
        details=details,
        isolation=isolation,
        phases=target.phases,
        setup_seconds=ran.ended.setup_seconds,
        waited_seconds=ran.ended.waited_seconds,
        **common,
    )


def shared_temporary(cache: Path) -> dict[Path, Path]:
    """Folders of the temporary directory that the evaluations at the namespace level share
    through the cache, where theirs is private: torch.compile keeps its precompiled headers in
    /tmp/torchinductor_<user>, whatever TORCHINDUCTOR_CACHE_DIR says (4.5 s to build again on
    CPU for every evaluation)."""
    try:  # as torch names it (evo.evaluate.sandbox passes USER and LOGNAME on)
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid_{os.getuid()}"
    source = cache / COMPILE / "tmp"
    source.mkdir(parents=True, exist_ok=True)
    return {Path(JAILED_ENVIRONMENT["TMPDIR"]) / f"torchinductor_{user}": source}


def child_environment(extra: dict[str, str], device: str, threads: int) -> dict[str, str]:
    """The variant's environment: an allow-list of ours, no credentials, and the request."""
    env = {
        name: value
        for name, value in os.environ.items()
        if (name in _PASSED_NAMES or name.startswith(_PASSED_PREFIXES)) and not looks_secret(name)
    }
    # evo's own folder, so that a target's fixed part can import evo.target.protocol.
    env["PYTHONPATH"] = str(Path(evo.__file__).resolve().parent.parent)
    env["PYTHONUNBUFFERED"] = "1"
    env["OMP_NUM_THREADS"] = str(threads)
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    env.update(extra)
    return env
