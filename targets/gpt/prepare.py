"""Fixed part of the gpt target: corpus, tokenizer, data loader, training clock and the metric.

evo runs `python prepare.py` in a fresh working copy of this folder. This file reads evo's request,
loads the cached corpus (building it on first use), imports the mutable `train.py`, calls
`train.train(run)` under a training clock that this file owns, measures the model it returns
with `evaluate_bpb`, and reports val_bpb through evo's result channel. train.py cannot report a
metric, change the budget or see the validation data: it gets a `Run` and returns a model.

Prepare a larger corpus by hand, once, from text/.jsonl/.parquet files, folders or URLs:

    python targets/gpt/prepare.py corpus NAME --from PATH_OR_URL [PATH_OR_URL ...] [--column text]

then set CORPUS = "NAME" below, in this target or in a copy of it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import platform
import shutil
import sys
import sysconfig
import tempfile
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

STARTED = time.perf_counter()  # before torch's import: set-up is counted from here

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from evo.target import protocol  # noqa: E402

CORPUS = "stdlib"  # the Python standard library's own sources: on every machine, no download
VOCAB_SIZE = 256  # byte-level tokens: a token id is a byte value
SEPARATOR = 0  # token between documents; it stands for no text, so the metric skips it
SEQ_LEN = 256  # the context the metric is measured at
EVAL_TOKENS = 2**17  # predicted tokens per measurement, the same positions for every variant
EVAL_BATCH = 64
HOLDOUT_EVERY = 20  # every 20th document goes to the validation split
DEFAULT_BUDGET_SECONDS = 60.0  # only when run by hand; evo passes target.toml's budget
# The CPU may queue this many training steps ahead of the GPU: the clock waits for older ones
# instead of synchronizing every step, which would leave the GPU idle while the next is queued.
STEPS_AHEAD = 2

# UTF-8 bytes each token stands for: what makes bits per byte independent of the vocabulary.
TOKEN_BYTES = torch.ones(VOCAB_SIZE, dtype=torch.int64)
TOKEN_BYTES[SEPARATOR] = 0

# Dense bf16 peak of known GPUs, for MFU; others report no MFU rather than a guess.
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "GH200": 989e12, "A100": 312e12, "L40S": 362e12}


class Refused(Exception):
    """The variant ran but must not be scored; the message says why."""


# ---------------------------------------------------------------------------- corpus


def corpus_dir(cache_dir: Path, name: str = CORPUS) -> Path:
    # The standard library differs between Python versions, so its corpus is keyed by version.
    key = f"stdlib-{platform.python_version()}" if name == "stdlib" else name
    return cache_dir / "gpt" / key


def stdlib_documents() -> Iterator[bytes]:
    """The standard library's .py sources, tests excluded, in a fixed order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        if not {"test", "tests", "site-packages"} & set(path.relative_to(root).parts):
            yield path.read_bytes()


def build_corpus(documents: Iterable[bytes], out: Path) -> dict:
    """Write train.bin and val.bin (uint8 tokens) under `out`, atomically; return its metadata.

    Documents are joined by SEPARATOR; every HOLDOUT_EVERY-th goes to validation. Concurrent
    builders are safe: each writes a private folder and the first rename wins.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    counts = {"train": 0, "val": 0}
    digests = {"train": hashlib.sha256(), "val": hashlib.sha256()}
    with contextlib.ExitStack() as stack:
        files = {
            split: stack.enter_context(open(staging / f"{split}.bin", "wb")) for split in counts
        }
        for index, document in enumerate(documents):
            split = "val" if index % HOLDOUT_EVERY == HOLDOUT_EVERY - 1 else "train"
            chunk = document.replace(b"\0", b"") + bytes([SEPARATOR])
            files[split].write(chunk)
            digests[split].update(chunk)
            counts[split] += 1
    meta = {
        "documents": counts,
        "bytes": {split: (staging / f"{split}.bin").stat().st_size for split in counts},
        "sha256": {split: digest.hexdigest() for split, digest in digests.items()},
    }
    if meta["bytes"]["val"] < SEQ_LEN + 1 or meta["bytes"]["train"] < SEQ_LEN + 1:
        shutil.rmtree(staging)
        raise ValueError(
            f"corpus too small ({meta['documents']} documents): each split needs more than "
            f"{SEQ_LEN} bytes; add documents (every {HOLDOUT_EVERY}th is held out)"
        )
    (staging / "meta.json").write_text(json.dumps(meta, indent=1))
    try:
        os.rename(staging, out)
    except OSError:  # another evaluation built it first; theirs is identical
        shutil.rmtree(staging)
    return json.loads((out / "meta.json").read_text())


def load_split(cache_dir: Path, split: str) -> np.ndarray:
    """A split of the configured corpus as a read-only uint8 memmap, built on first use."""
    folder = corpus_dir(cache_dir)
    if not (folder / "meta.json").exists():
        if CORPUS != "stdlib":
            raise FileNotFoundError(
                f"corpus {CORPUS!r} is not prepared in {folder}; run "
                f"`python prepare.py corpus {CORPUS} --from ...` first"
            )
        build_corpus(stdlib_documents(), folder)
    return np.memmap(folder / f"{split}.bin", dtype=np.uint8, mode="r")


def documents_from(sources: list[str], column: str, downloads: Path) -> Iterator[bytes]:
    """Documents from files, folders or URLs: .parquet and .jsonl rows (`column`), else files."""
    for source in sources:
        path = _download(source, downloads) if "://" in source else Path(source)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            yield from _file_documents(file, column)


def _file_documents(path: Path, column: str) -> Iterator[bytes]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(columns=[column]):
            for text in batch.column(0).to_pylist():
                if text:
                    yield text.encode()
    elif path.suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip() and json.loads(line).get(column):
                    yield json.loads(line)[column].encode()
    else:
        data = path.read_bytes()
        if b"\0" not in data[:4096]:  # a binary file is no text to learn from
            yield data


def _download(url: str, downloads: Path) -> Path:
    downloads.mkdir(parents=True, exist_ok=True)
    target = downloads / (hashlib.sha256(url.encode()).hexdigest()[:12] + "-" + Path(url).name)
    if not target.exists():
        fd, tmp = tempfile.mkstemp(dir=downloads, suffix=".part")
        os.close(fd)
        urllib.request.urlretrieve(url, tmp)
        os.replace(tmp, target)
    return target


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
                self._clock_start = time.perf_counter()
            else:
                self._wait_for_gpu()
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


# ---------------------------------------------------------------------------- the metric


def eval_windows(val_data: np.ndarray) -> torch.Tensor:
    """EVAL_TOKENS // SEQ_LEN windows of SEQ_LEN + 1 tokens, spread evenly over validation."""
    count = EVAL_TOKENS // SEQ_LEN
    starts = np.linspace(0, len(val_data) - SEQ_LEN - 1, count).astype(np.int64)
    return torch.from_numpy(
        np.stack([val_data[s : s + SEQ_LEN + 1] for s in starts]).astype(np.int64)
    )


def _logits(model: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=inputs.is_cuda):
        logits = model(inputs)
    if not isinstance(logits, torch.Tensor) or logits.shape != (*inputs.shape, VOCAB_SIZE):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise Refused(
            f"the model must return logits of shape {(*inputs.shape, VOCAB_SIZE)}, not {shape}"
        )
    return logits.float()


@torch.no_grad()
def evaluate_bpb(model: torch.nn.Module, windows: torch.Tensor, device: torch.device) -> float:
    """Validation bits per byte: the bits the model needs, on average, per byte of held-out text.

        val_bpb = sum_t -ln p(token_t | tokens before t)  /  (ln 2 * sum_t bytes(token_t))

    The numerator is the total cross-entropy in nats over every predicted token; ln 2 turns
    nats into bits; dividing by the UTF-8 bytes of the predicted tokens, not by their count,
    makes the value independent of the vocabulary (a tokenizer with longer tokens predicts fewer
    of them, each covering more bytes), so tokenizer and architecture changes compare fairly.
    Tokens that stand for no text (the document separator) are left out of both sums.
    Measured here, not in the mutable model: the model only maps token ids to logits, and this
    function computes the cross-entropy in fp32, on the same EVAL_TOKENS positions of the
    validation split at SEQ_LEN context for every variant. Lower is better; a uniform guess over
    256 byte values scores 8.0.
    """
    total_nats = torch.zeros((), dtype=torch.float64)
    total_bytes = 0
    for batch in windows.split(EVAL_BATCH):
        batch = batch.to(device)
        inputs, targets = batch[:, :-1], batch[:, 1:]
        logits = _logits(model, inputs)
        nats = F.cross_entropy(
            logits.reshape(-1, VOCAB_SIZE), targets.reshape(-1), reduction="none"
        )
        nbytes = TOKEN_BYTES.to(device)[targets.reshape(-1)]
        total_nats += (nats.double() * (nbytes > 0)).sum().cpu()  # fp64: 2^17 terms
        total_bytes += int(nbytes.sum())
    return float(total_nats) / (math.log(2) * total_bytes)


def flops_per_token(model: torch.nn.Module, seq_len: int, device: torch.device) -> int:
    """Training FLOPs per token: one forward and backward pass of one sequence, counted.

    Counted by torch's FLOP counter, so it follows whatever the variant computes: 2 FLOPs per
    multiply-add of every matrix product, twice that again for the backward pass, which gives
    6 per weight of every matrix (embedding lookups do none) plus 12 * depth * width * seq_len
    for attention's scores and weighted sums, over the whole seq_len x seq_len square as in
    PaLM's MFU (Chowdhery et al. 2022, appendix B): causal masking is not subtracted.
    Attention is counted through the math kernels, which the counter can see on every device.
    """
    inputs = torch.randint(0, VOCAB_SIZE, (1, seq_len), device=device)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        logits = _logits(model, inputs)
        if logits.requires_grad:  # a model that cannot learn is measured all the same
            logits.sum().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() // seq_len


@torch.no_grad()
def check_causal(model: torch.nn.Module, windows: torch.Tensor, device: torch.device) -> None:
    """Refuse a model whose predictions at a position depend on later tokens.

    Such a model could read the very byte it is asked to predict. Changing the second half of
    each input must leave the logits of the first half unchanged.
    """
    inputs = windows[:4, :-1].to(device)
    cut = SEQ_LEN // 2
    changed = inputs.clone()
    changed[:, cut:] = (
        inputs[:, cut:] + 1 + torch.arange(SEQ_LEN - cut, device=device)
    ) % VOCAB_SIZE
    before, after = _logits(model, inputs)[:, :cut], _logits(model, changed)[:, :cut]
    tolerance = (2e-2 if inputs.is_cuda else 1e-4) * (1.0 + float(before.abs().max()))
    if not torch.isfinite(before).all():
        raise Refused("the model's logits are not finite (did the training diverge?)")
    if float((before - after).abs().max()) > tolerance:
        raise Refused("the model is not causal: predictions depend on later tokens")


# ---------------------------------------------------------------------------- evaluation


def evaluate(req: protocol.Request) -> None:
    torch.set_num_threads(req.threads)
    torch.manual_seed(req.seed)
    device = torch.device(req.device)
    run = Run(
        load_split(req.cache_dir, "train"),
        device,
        req.seed,
        req.budget_seconds,
        ready=lambda: protocol.ready(req),
    )
    windows = eval_windows(load_split(req.cache_dir, "val"))

    import train  # the mutable part, imported only after request() has hidden the channel

    call_started = time.perf_counter()
    model = train.train(run)
    train_seconds = run._stop_clock() if run.steps > 1 else time.perf_counter() - call_started
    details = {
        "train_seconds": round(train_seconds, 3),
        "tokens": run.tokens,
        "steps": run.steps,
        "tokens_per_second": round(run.tokens / max(train_seconds, 1e-9)),
        "setup_seconds": run.setup_seconds and round(run.setup_seconds, 2),
        "first_step_seconds": run.first_step_seconds and round(run.first_step_seconds, 2),
        "corpus": corpus_dir(req.cache_dir).name,
    }
    grace = max(2.0, 0.05 * req.budget_seconds)
    try:
        if not isinstance(model, torch.nn.Module):
            raise Refused(f"train() must return a torch.nn.Module, not {type(model).__name__}")
        if train_seconds > req.budget_seconds + grace:
            raise Refused(
                f"trained {train_seconds:.1f}s past the {req.budget_seconds:g}s budget; "
                "stop when run.batches() ends"
            )
        details["params"] = sum(p.numel() for p in model.parameters())
        if device.type == "cuda":
            details["peak_vram_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
        if run.steps:
            flops = flops_per_token(model, run.batch_shape[1], device)
            details["flops_per_token"] = flops
            details["mfu"] = mfu(flops * run.tokens / train_seconds, device)
        model.eval()
        check_causal(model, windows, device)
        val_bpb = evaluate_bpb(model, windows, device)
    except Refused as refusal:
        protocol.report_invalid(req, str(refusal), **details)
        return
    protocol.report(req, val_bpb, **details)


def mfu(flops_per_second: float, device: torch.device) -> float | None:
    """Model FLOPs utilisation: training FLOPs per second (flops_per_token) over the GPU's dense
    bf16 peak; None on CPU and on GPUs of unknown peak, rather than a guess."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    peak = next((flops for key, flops in PEAK_FLOPS.items() if key in name), None)
    return None if peak is None else round(flops_per_second / peak, 4)


def compare_clocks(budget: float, cache_dir: Path) -> None:
    """train.py's tokens per second on CUDA with the clock synchronizing every step, then with
    the GPU up to STEPS_AHEAD steps behind: what not synchronizing saves (on CPU, nothing)."""
    import train

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data, speeds = load_split(cache_dir, "train"), {}
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
    if not argv or argv[0] not in ("corpus", "clock"):
        evaluate(protocol.request(DEFAULT_BUDGET_SECONDS))
        return
    if argv[0] == "clock":
        compare_clocks(float(argv[1]) if len(argv) > 1 else 20.0, protocol.DEFAULT_CACHE_DIR)
        return
    parser = argparse.ArgumentParser(prog="prepare.py corpus", description="Prepare a corpus.")
    parser.add_argument("name", help="the corpus name to set as CORPUS in prepare.py")
    parser.add_argument(
        "--from",
        dest="sources",
        nargs="+",
        required=True,
        help="text/.jsonl/.parquet files, folders, or URLs of such files",
    )
    parser.add_argument("--column", default="text", help="text column of .parquet/.jsonl rows")
    parser.add_argument("--cache-dir", type=Path, default=protocol.DEFAULT_CACHE_DIR)
    args = parser.parse_args(argv[1:])
    out = corpus_dir(args.cache_dir, args.name)
    if out.exists():
        sys.exit(f"corpus {args.name!r} already exists in {out}; remove it to rebuild")
    try:
        meta = build_corpus(
            documents_from(args.sources, args.column, args.cache_dir / "downloads"), out
        )
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"prepare.py corpus: {e}")
    sizes = json.dumps(meta["bytes"])
    print(f"corpus {args.name!r} in {out}: {sizes} bytes; set CORPUS = {args.name!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
