"""The gpt target's fixed part: corpus building from every source (each split in its own
folder), the clock, the metric on the exported model."""

from __future__ import annotations

import json
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

DOCS = [f"document {i}: " + "abc " * (5 * i) + "\n" for i in range(40)]  # 2 held out


def expected_split(docs: list[str]) -> dict[str, bytes]:
    val = [d for i, d in enumerate(docs) if i % 20 == 19]
    train = [d for i, d in enumerate(docs) if i % 20 != 19]
    return {
        split: b"".join(d.encode() + b"\0" for d in part)
        for split, part in (("train", train), ("val", val))
    }


def write_sources(folder, kind):
    folder.mkdir()
    if kind == "text":
        for i, doc in enumerate(DOCS):
            (folder / f"{i:03d}.txt").write_text(doc)
        return str(folder)
    if kind == "jsonl":
        path = folder / "docs.jsonl"
        path.write_text(
            "".join(json.dumps({"text": d, "id": i}) + "\n" for i, d in enumerate(DOCS))
        )
        return str(path)
    path = folder / "docs.parquet"
    pq.write_table(pa.table({"id": list(range(40)), "text": DOCS}), path, row_group_size=7)
    return f"file://{path}" if kind == "parquet-url" else str(path)


@pytest.mark.parametrize("kind", ["text", "jsonl", "parquet", "parquet-url"])
def test_corpus_from_local_files_and_urls(gpt_corpus, tmp_path, kind):
    source = write_sources(tmp_path / "src", kind)
    documents = gpt_corpus.documents_from([source], "text", tmp_path / "downloads")
    meta = gpt_corpus.build_corpus(documents, tmp_path / "cache", "mine")
    expected = expected_split(DOCS)
    assert meta["documents"] == {"train": 38, "val": 2}
    for split, folder in (("train", "gpt"), ("val", "gpt-held-out")):
        path = tmp_path / "cache" / folder / "mine" / f"{split}.bin"
        assert path.read_bytes() == expected[split]
        assert meta["bytes"][split] == len(expected[split])
    assert sorted(p.name for p in (tmp_path / "cache" / "gpt" / "mine").iterdir()) == [
        "meta.json",
        "train.bin",
    ]


def test_a_corpus_too_small_is_refused(gpt_corpus, tmp_path):
    with pytest.raises(ValueError, match="corpus too small"):
        gpt_corpus.build_corpus([b"tiny"] * 3, tmp_path, "small")
    assert [list(folder.iterdir()) for folder in tmp_path.iterdir()] == [[], []]


def test_the_default_corpus_is_deterministic(gpt_corpus, cache_dir):
    gpt_corpus.prepare(cache_dir)
    first = gpt_corpus.split_path(cache_dir, "val")
    meta = json.loads((gpt_corpus.corpus_dir(cache_dir, "train") / "meta.json").read_text())
    assert meta["bytes"]["val"] == first.stat().st_size > 200_000
    rebuilt = gpt_corpus.build_corpus(gpt_corpus.stdlib_documents(), cache_dir / "again")
    assert rebuilt["sha256"] == meta["sha256"]


def test_a_cache_from_before_the_held_out_folder_moves_its_validation_split(gpt_corpus, tmp_path):
    gpt_corpus.build_corpus([b"x" * 300] * 40, tmp_path, "stdlib")
    train = gpt_corpus.corpus_dir(tmp_path, "train")
    val = gpt_corpus.corpus_dir(tmp_path, "val") / "val.bin"
    val.rename(train / "val.bin")  # the layout of a week ago: both splits in one folder
    gpt_corpus.prepare(tmp_path)
    assert val.read_bytes() == (b"x" * 300 + b"\0") * 2 and not (train / "val.bin").exists()


class Uniform(torch.nn.Module):
    def forward(self, idx):
        return torch.zeros(*idx.shape, 256)


class Peeking(torch.nn.Module):
    def forward(self, idx):
        return 50.0 * torch.nn.functional.one_hot(idx.roll(-1, dims=1), 256).float()


def test_a_uniform_model_scores_exactly_8_bits_per_byte(gpt_measure):
    rng = np.random.default_rng(0)
    val = rng.integers(0, 256, size=300_000).astype(np.uint8)
    windows = gpt_measure.eval_windows(val)
    assert windows.shape == (gpt_measure.EVAL_TOKENS // 256, 257)
    assert gpt_measure.evaluate_bpb(Uniform(), windows, torch.device("cpu")) == pytest.approx(
        8.0,
        abs=1e-6,  # the logits' fp32 log-sum-exp
    )


def test_separators_count_no_bytes(gpt_measure):
    windows = torch.zeros(4, 257, dtype=torch.int64)
    windows[:, 1::2] = 65  # half the targets are separators (0), half the letter A
    # A model sure of the letter and unsure of the separator: only the letter counts.
    logits = torch.full((256,), -1e9)
    logits[65] = 0.0

    class SureOfA(torch.nn.Module):
        def forward(self, idx):
            return logits.expand(*idx.shape, 256)

    assert gpt_measure.evaluate_bpb(SureOfA(), windows, torch.device("cpu")) == 0.0


def test_causality_check(gpt_measure):
    windows = torch.randint(0, 256, (8, 257))
    gpt_measure.check_causal(Uniform(), windows, torch.device("cpu"))
    with pytest.raises(gpt_measure.Refused, match="not causal"):
        gpt_measure.check_causal(Peeking(), windows, torch.device("cpu"))


def test_wrong_logit_shapes_are_refused(gpt_measure):
    class Flat(torch.nn.Module):
        def forward(self, idx):
            return torch.zeros(idx.shape[0], 256)

    with pytest.raises(
        gpt_measure.Refused, match=r"logits of shape \(4, 256, 256\), not \(4, 256\)"
    ):
        gpt_measure.check_causal(
            Flat(), torch.zeros(4, 257, dtype=torch.int64), torch.device("cpu")
        )


def test_the_clock_stops_batches_once_the_budget_is_spent(gpt_prepare):
    data = np.arange(10_000, dtype=np.uint8)
    run = gpt_prepare.Run(data, torch.device("cpu"), seed=1, budget=0.3)
    progress = []
    for inputs, targets in run.batches(4, 16):
        assert torch.equal(inputs[:, 1:], targets[:, :-1])
        progress.append(run.progress())
    assert progress[0] == 0.0 and progress == sorted(progress) and progress[-1] <= 1.0
    assert run.elapsed() >= 0.3
    assert run.tokens == run.steps * 4 * 16 == len(progress) * 64


def test_one_seed_gives_one_data_order(gpt_prepare):
    data = np.arange(10_000, dtype=np.uint8)

    def first_batch(seed):
        run = gpt_prepare.Run(data, torch.device("cpu"), seed=seed, budget=1.0)
        return next(run.batches(4, 16))[0]

    assert torch.equal(first_batch(1), first_batch(1))
    assert not torch.equal(first_batch(1), first_batch(2))


@pytest.mark.parametrize(
    ("depth", "width", "heads", "seq_len"), [(4, 128, 4, 256), (2, 64, 2, 64), (3, 96, 3, 128)]
)
def test_flops_per_token_count_every_matrix_and_attention(
    gpt_measure, depth, width, heads, seq_len
):
    """6 per weight of every matrix (not the embedding lookup) + 12 * depth * width * seq_len."""
    sys.path.insert(0, str(gpt_measure.Path(gpt_measure.__file__).parent))
    try:
        import train
    finally:
        sys.path.pop(0)
    model = train.GPT(256, depth, width, heads, seq_len)
    matrices = depth * 12 * width * width + width * 256  # qkv, proj, fc, mlp proj; the head
    expected = 6 * matrices + 12 * depth * width * seq_len
    inputs = torch.zeros(2, seq_len, dtype=torch.int64)
    assert gpt_measure.flops_per_token(model, inputs) == expected
    assert gpt_measure.mfu(1e15, torch.device("cpu")) is None  # no peak known on CPU


def test_the_exported_model_gives_the_trained_models_logits(gpt_prepare, gpt_measure, tmp_path):
    sys.path.insert(0, str(gpt_measure.Path(gpt_measure.__file__).parent))
    try:
        import train
    finally:
        sys.path.pop(0)
    torch.manual_seed(0)
    model = train.GPT(256, 2, 64, 2, 256).eval()
    for p in model.parameters():  # not the silent start: every output depends on every layer
        torch.nn.init.normal_(p, std=0.1)
    gpt_prepare.export(model, torch.device("cpu"), tmp_path / "model.pt2")
    loaded = gpt_measure.load_model(tmp_path / "model.pt2")
    inputs = torch.randint(0, 256, (gpt_measure.EVAL_BATCH, 256))
    with torch.no_grad():
        assert torch.equal(loaded(inputs), model(inputs))


def test_a_stopped_clock_stays_stopped(gpt_prepare):
    run = gpt_prepare.Run(np.arange(10_000, dtype=np.uint8), torch.device("cpu"), 1, 60.0)
    batches = run.batches(4, 16)
    next(batches), next(batches)  # the clock starts with the second batch
    seconds = run._stop_clock()
    assert run.batch_shape == (4, 16) and seconds == run.elapsed() == run._stop_clock() > 0
