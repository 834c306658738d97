"""The outcome of one evaluation: the record the CLI prints and the engine logs."""

from __future__ import annotations

import json
import math
import signal
from dataclasses import asdict, dataclass, field
from typing import Any

from evo.status import Status


@dataclass(frozen=True)
class EvalResult:
    """One evaluation of one variant.

    status: ok (finite metric), crash (non-zero exit, no verdict), timeout (killed at the hard
        limit), oom (stopped at the memory cap), invalid (ran, but the metric is NaN/inf, was
        never reported, or the fixed part refused it: a failed correctness check, a broken
        budget, a non-causal model).
    metric: the fixed part's measurement; set only when status is ok.
    train_seconds: time the fixed part counted against the budget, when it reported one.
    wall_seconds: the evaluation's whole life, start-up and final evaluation included.
    peak_rss_mb: peak memory of the evaluation: its cgroup's where it has one, else its largest
        process's resident memory.
    reason: one line saying why a non-ok evaluation failed.
    stderr_tail: the end of stderr (the traceback of a crash).
    details: what else the fixed part reported (tokens, steps, params, MFU, GPU memory, ...).
    isolation: the level it ran at (evo.evaluate.isolation); "" where no sandbox ran it.
    phases: how it was measured: "run+measure" (two processes, the metric computed where the
        variant never ran) or "one process" (evo.evaluate.phases).
    setup_seconds: with pre-warm, from its start until the fixed part was ready to train.
    waited_seconds: with pre-warm, how long it then waited for its turn (not in wall_seconds).
    """

    status: Status
    metric_name: str
    metric: float | None
    seed: int
    device: str
    budget_seconds: float
    train_seconds: float | None
    wall_seconds: float
    peak_rss_mb: float | None
    reason: str = ""
    stderr_tail: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    isolation: str = ""
    phases: str = ""
    setup_seconds: float | None = None
    waited_seconds: float = 0.0

    def summary(self) -> str:
        """The one-line form the CLI prints."""
        head = f"{self.status} {self.metric_name}="
        head += f"{self.metric:.4f}" if self.metric is not None else "-"
        parts = [head, f"train={_seconds(self.train_seconds)}", f"wall={self.wall_seconds:.1f}s"]
        if self.peak_rss_mb is not None:
            parts.append(f"rss={self.peak_rss_mb:.0f}MB")
        parts += [f"{key}={_short(value)}" for key, value in self.details.items()]
        parts += [f"seed={self.seed}", f"device={self.device}"]
        if self.phases:
            parts.append(f"phases={self.phases}")
        if self.reason:
            parts.append(f"reason: {self.reason}")
        return " ".join(parts)

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def classify(
    reported: dict[str, Any] | None,
    exit_code: int,
    timed_out: bool,
    stderr_tail: str,
    expects: str = "metric",
) -> tuple[str, float | None, str]:
    """Status, metric and reason from what a process left behind.

    expects: what makes it ok: "metric", a report with a finite metric (the fixed part's: the
    exit code and stderr only explain failures); "handoff", the run phase's handoff; "exit", a
    zero exit status (a prepare step).
    """
    if timed_out:
        return Status.TIMEOUT, None, "killed at the hard timeout"
    if reported is not None and reported.get("status") == Status.INVALID:
        return Status.INVALID, None, str(reported.get("reason") or "refused by the fixed part")
    if exit_code < 0:
        return Status.CRASH, None, f"killed by {signal.Signals(-exit_code).name}"
    if exit_code > 0:
        return Status.CRASH, None, _last_line(stderr_tail) or f"exited with status {exit_code}"
    if expects == "exit":
        return Status.OK, None, ""
    if reported is None:
        if expects == "handoff":
            return Status.INVALID, None, "the run phase handed nothing off"
        return Status.INVALID, None, "the metric was never reported"
    if expects == "handoff":
        ok = reported.get("status") == Status.OK
        return (Status.OK, None, "") if ok else (Status.INVALID, None, "the handoff is malformed")
    metric = reported.get("metric")
    if reported.get("status") != Status.OK or not (metric is None or _is_number(metric)):
        return Status.INVALID, None, "the report is malformed"
    if metric is None or not math.isfinite(metric):
        return Status.INVALID, None, "the metric is not finite"
    return Status.OK, float(metric), ""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
