"""Fixed part of the gpt target: the run phase's data loader, training clock and export.

evo runs `python corpus.py` (the prepare step: the corpus, built on first use), then `python
prepare.py` (the run phase) in a working copy that holds the variant's train.py, then `python
measure.py` (the measure phase) in a fresh process without it. This file reads evo's request,
loads the training split, imports the mutable `train.py`, calls `train.train(run)` under a
training clock that this file owns, and exports the model it returns (torch.export: a graph of
ATen operators and its weights) to the output folder, where measure.py loads it, checks it and
measures val_bpb on the validation split, which this phase never sees. evo times the training
itself, between `protocol.ready` and `protocol.trained`: a variant that slows the clock below
gains nothing but an invalid result.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

STARTED = time.perf_counter()  # before torch's import: set-up is counted from here

import numpy as np  # noqa: E402
import torch  # noqa: E402
from corpus import EVAL_BATCH, MODEL, SEQ_LEN, VOCAB_SIZE, first_line, split_path  # noqa: E402

from evo.target import protocol  # noqa: E402

DEFAULT_BUDGET_SECONDS = 60.0  # only when run by hand; evo passes target.toml's budget
# The CPU may queue this many training steps ahead of the GPU: the clock waits for older ones
# instead of synchronizing every step, which would leave the GPU idle while the next is queued.
STEPS_AHEAD = 2


class Refused(Exception):
    """The variant ran but must not be scored; the message says why."""


# ---------------------------------------------------------------------------- training clock


class Run:
    """What `train.train(run)` gets: the device, the training data, and the training clock.

    device: where to train (chosen by evo; CUDA only where the evaluator holds a GPU).
    seed: the evaluation's seed (torch is already seeded with it).
    vocab_size, seq_len: the tokenizer's size and the context the metric is measured at;
        the model must map (batch, seq_len) token ids to (batch, seq_len, vocab_size) logits.
    budget_seconds: the training budget.

    The clock starts when the second batch is handed out, so start-up and the first step
    (compilation, warm-up) are not counted; just before, `ready()` tells evo that set-up is done
    (with pre-warm it returns when this evaluation may train). `batches` stops once the budget is
    spent; training past it makes the result invalid. On CUDA the clock reads wall time while
    the GPU works at most `steps_ahead` steps behind (a CUDA event per step), so its reading is
    early by at most that many steps; `_stop_clock()` waits for the GPU and stops the clock.
    """

    def __init__(
        self,
        train_data: np.ndarray,
        device: torch.device,
        seed: int,
        budget: float,
        ready: Callable[[], None] = lambda: None,
        steps_ahead: int = STEPS_AHEAD,
    ):
        self.device = device
        self._ready = ready
        self.seed = seed
        self.vocab_size = VOCAB_SIZE
        self.seq_len = SEQ_LEN
        self.budget_seconds = budget
        self.tokens = 0
        self.steps = 0
        self.batch_shape = (0, 0)  # of the last batch handed out
        self._data = train_data
        self._rng = np.random.default_rng(seed)
        self._clock_start: float | None = None
        self._clock_stop: float | None = None
        self._steps_ahead = steps_ahead
        self._queued: deque[torch.cuda.Event] = deque()  # one per step the GPU may not have run
        self.first_step_seconds: float | None = None  # with torch.compile: compiling
        self.setup_seconds: float | None = None  # from the start to the training clock
        # the clock's grace allows one step past the budget (evo.target.protocol.clock_grace)
        self.longest_step_seconds = 0.0
        self._step_started = 0.0

    def progress(self) -> float:
        """Fraction of the training budget used, in [0, 1]: schedule learning rates on this."""
        return min(1.0, self.elapsed() / self.budget_seconds)

    def elapsed(self) -> float:
        """Training seconds counted against the budget so far."""
        if self._clock_start is None:
            return 0.0
        return (self._clock_stop or time.perf_counter()) - self._clock_start

    def _stop_clock(self) -> float:
        """Wait for the queued GPU work, stop the clock; the training seconds."""
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        if self._clock_start is not None and self._clock_stop is None:
            self._clock_stop = time.perf_counter()
        return self.elapsed()

    def batches(
        self, batch_size: int, seq_len: int = SEQ_LEN
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Random training windows (inputs, next-token targets) until the budget is spent."""
        while True:
            if self.steps == 0:
                first_step = time.perf_counter()
            elif self.steps == 1:
                if self.device.type == "cuda":
                    torch.cuda.synchronize()  # the first step is set-up, compilation included
                now = time.perf_counter()
                self.first_step_seconds = now - first_step
                self.setup_seconds = now - STARTED
                self._ready()
                self._clock_start = self._step_started = time.perf_counter()
            else:
                self._wait_for_gpu()
                now = time.perf_counter()
                self.longest_step_seconds = max(self.longest_step_seconds, now - self._step_started)
                self._step_started = now
                if self.elapsed() >= self.budget_seconds:
                    return
            starts = self._rng.integers(0, len(self._data) - seq_len - 1, size=batch_size)
            windows = np.stack([self._data[s : s + seq_len + 1] for s in starts])
            tokens = torch.from_numpy(windows.astype(np.int64)).to(self.device, non_blocking=True)
            self.steps += 1
            self.tokens += batch_size * seq_len
            self.batch_shape = (batch_size, seq_len)
            yield tokens[:, :-1], tokens[:, 1:]

    def _wait_for_gpu(self) -> None:
        """Mark the end of the step just queued; wait until the GPU is within steps_ahead."""
        if self.device.type != "cuda":
            return
        event = torch.cuda.Event()
        event.record()
        self._queued.append(event)
        while len(self._queued) > self._steps_ahead:
            self._queued.popleft().synchronize()


# ---------------------------------------------------------------------------- the run phase


def run_phase(req: protocol.Request) -> None:
    torch.set_num_threads(req.threads)
    torch.manual_seed(req.seed)
    device = torch.device(req.device)
    data = np.memmap(split_path(req.cache_dir, "train"), dtype=np.uint8, mode="r")
    run = Run(data, device, req.seed, req.budget_seconds, ready=lambda: protocol.ready(req))

    import train  # the mutable part, imported only after request() has hidden the channel

    call_started = time.perf_counter()
    model = train.train(run)
    train_seconds = run._stop_clock() if run.steps > 1 else time.perf_counter() - call_started
    protocol.trained(req)
    details = {
        "train_seconds": round(train_seconds, 3),
        "tokens": run.tokens,
        "steps": run.steps,
        "tokens_per_second": round(run.tokens / max(train_seconds, 1e-9)),
        "setup_seconds": run.setup_seconds and round(run.setup_seconds, 2),
        "first_step_seconds": run.first_step_seconds and round(run.first_step_seconds, 2),
        "longest_step_seconds": round(run.longest_step_seconds, 3),
        "corpus": split_path(req.cache_dir, "train").parent.name,
    }
    grace = protocol.clock_grace(req.budget_seconds, run.longest_step_seconds)
    try:
        if not isinstance(model, torch.nn.Module):
            raise Refused(f"train() must return a torch.nn.Module, not {type(model).__name__}")
        if train_seconds > req.budget_seconds + grace:
            raise Refused(
                f"trained {train_seconds:.1f}s, past the {req.budget_seconds:g}s budget "
                f"(+{grace:.1f}s grace: one {run.longest_step_seconds:.1f}s step and a margin); "
                "stop when run.batches() ends"
            )
        details["params"] = sum(p.numel() for p in model.parameters())
        if device.type == "cuda":
            details["peak_vram_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
        export(model.eval(), device, req.output_dir / MODEL)
    except Refused as refusal:
        protocol.report_invalid(req, str(refusal), **details)
        return
    protocol.handoff(req, **details)


def export(model: torch.nn.Module, device: torch.device, path: Path) -> None:
    """The model as torch.export saves it: its graph of ATen operators on (EVAL_BATCH,
    SEQ_LEN) token ids, and its weights; all the measure phase gets of it."""
    example = torch.zeros(EVAL_BATCH, SEQ_LEN, dtype=torch.long, device=device)
    started = time.perf_counter()
    try:
        with torch.no_grad():
            program = torch.export.export(model, (example,))
    except Exception as e:  # the exporter says what it cannot trace, and where
        raise Refused(f"the model cannot be exported for measurement: {first_line(e)}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, path)
    print(f"exported in {time.perf_counter() - started:.1f}s", file=sys.stderr)


def compare_clocks(budget: float, cache_dir: Path) -> None:
    """train.py's tokens per second on CUDA with the clock synchronizing every step, then with
    the GPU up to STEPS_AHEAD steps behind: what not synchronizing saves (on CPU, nothing)."""
    import train

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data = np.memmap(split_path(cache_dir, "train"), dtype=np.uint8, mode="r")
    speeds = {}
    for ahead in (0, STEPS_AHEAD):
        torch.manual_seed(0)
        run = Run(data, device, seed=0, budget=budget, steps_ahead=ahead)
        train.train(run)
        speeds[ahead] = run.tokens / run._stop_clock()
    gain = speeds[STEPS_AHEAD] / speeds[0] - 1
    print(
        f"clock: {speeds[0]:,.0f} tokens/s synchronizing every step, "
        f"{speeds[STEPS_AHEAD]:,.0f} with the GPU up to {STEPS_AHEAD} steps behind ({gain:+.1%})"
    )


def main(argv: list[str]) -> None:
    if argv and argv[0] == "clock":
        compare_clocks(float(argv[1]) if len(argv) > 1 else 20.0, protocol.DEFAULT_CACHE_DIR)
        return
    run_phase(protocol.request(DEFAULT_BUDGET_SECONDS, phase="run"))


if __name__ == "__main__":
    main(sys.argv[1:])
