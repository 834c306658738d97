"""Fixed part of the gpt target: the corpus, its byte-level tokens and its two splits.

evo runs `python corpus.py` as the target's prepare step, before each run phase, in a process
where no variant code runs: it builds the configured corpus on first use. The training split
goes to `EVO_CACHE_DIR/gpt/<corpus>/train.bin`, which the run phase reads; the validation split
to `EVO_CACHE_DIR/gpt-held-out/<corpus>/val.bin`, which only the measure phase sees (at the
namespace isolation level the run phase finds that folder empty).

The default corpus is the Python standard library's own sources: they are on every machine, and
so also where the run phase can read them (the interpreter needs them). A variant that rebuilt
the validation split from them by hand would find held-out text; a corpus prepared from files
that are nowhere else on the machine is fully held out:

    python corpus.py NAME --from PATH_OR_URL [PATH_OR_URL ...] [--column text]

then set CORPUS = "NAME" below, in this target or in a copy of it. Standard library only (and
pyarrow for .parquet sources): the prepare step starts in a fraction of a second.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import sys
import sysconfig
import tempfile
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path

from evo.target import protocol

CORPUS = "stdlib"  # the Python standard library's own sources: on every machine, no download
VOCAB_SIZE = 256  # byte-level tokens: a token id is a byte value
SEPARATOR = 0  # token between documents; it stands for no text, so the metric skips it
SEQ_LEN = 256  # the context the metric is measured at
HOLDOUT_EVERY = 20  # every 20th document goes to the validation split
HELD_OUT = "gpt-held-out"  # the cache folder only the measure phase sees ([measure] in target.toml)
SPLITS = {"train": "gpt", "val": HELD_OUT}  # split -> its cache folder
# The handoff between the phases: the run phase exports the model on batches of EVAL_BATCH
# windows of SEQ_LEN tokens (static shapes) to MODEL in its output folder.
EVAL_BATCH = 64
MODEL = "model.pt2"


def first_line(error: Exception) -> str:
    """An exception as the one line a refusal gives (torch's messages run to many)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]


def corpus_dir(cache_dir: Path, split: str, name: str = CORPUS) -> Path:
    # The standard library differs between Python versions, so its corpus is keyed by version.
    key = f"stdlib-{platform.python_version()}" if name == "stdlib" else name
    return cache_dir / SPLITS[split] / key


def split_path(cache_dir: Path, split: str) -> Path:
    """Where the configured corpus's split lies (built by the prepare step)."""
    path = corpus_dir(cache_dir, split) / f"{split}.bin"
    if not path.exists():
        raise FileNotFoundError(
            f"the {split} split of corpus {CORPUS!r} is missing in {path.parent}; "
            f"run `python corpus.py` (evo does, before every evaluation)"
        )
    return path


def stdlib_documents() -> Iterator[bytes]:
    """The standard library's .py sources, tests excluded, in a fixed order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        if not {"test", "tests", "site-packages"} & set(path.relative_to(root).parts):
            yield path.read_bytes()


def build_corpus(documents: Iterable[bytes], cache_dir: Path, name: str = CORPUS) -> dict:
    """Write the training and validation splits (uint8 tokens) of corpus `name`, each in its
    own cache folder, atomically; return the metadata.

    Documents are joined by SEPARATOR; every HOLDOUT_EVERY-th goes to validation. Concurrent
    builders are safe: each writes private folders and the first rename wins.
    """
    outs = {split: corpus_dir(cache_dir, split, name) for split in SPLITS}
    staging = {}
    for split, out in outs.items():
        out.parent.mkdir(parents=True, exist_ok=True)
        staging[split] = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    counts = dict.fromkeys(SPLITS, 0)
    digests = {split: hashlib.sha256() for split in SPLITS}
    with contextlib.ExitStack() as stack:
        files = {s: stack.enter_context(open(staging[s] / f"{s}.bin", "wb")) for s in SPLITS}
        for index, document in enumerate(documents):
            split = "val" if index % HOLDOUT_EVERY == HOLDOUT_EVERY - 1 else "train"
            chunk = document.replace(b"\0", b"") + bytes([SEPARATOR])
            files[split].write(chunk)
            digests[split].update(chunk)
            counts[split] += 1
    meta = {
        "documents": counts,
        "bytes": {s: (staging[s] / f"{s}.bin").stat().st_size for s in SPLITS},
        "sha256": {s: digest.hexdigest() for s, digest in digests.items()},
    }
    if min(meta["bytes"].values()) < SEQ_LEN + 1:
        for folder in staging.values():
            shutil.rmtree(folder)
        raise ValueError(
            f"corpus too small ({meta['documents']} documents): each split needs more than "
            f"{SEQ_LEN} bytes; add documents (every {HOLDOUT_EVERY}th is held out)"
        )
    for split in ("val", "train"):  # train last: its meta.json says the corpus is complete
        (staging[split] / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            os.rename(staging[split], outs[split])
        except OSError:  # another evaluation built it first; theirs is identical
            shutil.rmtree(staging[split])
    return json.loads((outs["train"] / "meta.json").read_text())


def prepare(cache_dir: Path) -> None:
    """Build the configured corpus if it is not there (the stdlib one; others by hand)."""
    train = corpus_dir(cache_dir, "train")
    if (train / "meta.json").exists() and (corpus_dir(cache_dir, "val") / "val.bin").exists():
        return
    if CORPUS != "stdlib" and not (train / "meta.json").exists():
        sys.exit(
            f"corpus {CORPUS!r} is not prepared in {train}; "
            f"run `python corpus.py {CORPUS} --from ...` first"
        )
    if (train / "val.bin").exists():  # a cache from before the held-out folder: move it there
        corpus_dir(cache_dir, "val").mkdir(parents=True, exist_ok=True)
        os.replace(train / "val.bin", corpus_dir(cache_dir, "val") / "val.bin")
        return
    build_corpus(stdlib_documents(), cache_dir)


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


def main(argv: list[str]) -> None:
    if not argv:
        prepare(protocol.request(0.0).cache_dir)
        return
    parser = argparse.ArgumentParser(prog="corpus.py", description="Prepare a corpus.")
    parser.add_argument("name", help="the corpus name to set as CORPUS in corpus.py")
    parser.add_argument(
        "--from",
        dest="sources",
        nargs="+",
        required=True,
        help="text/.jsonl/.parquet files, folders, or URLs of such files",
    )
    parser.add_argument("--column", default="text", help="text column of .parquet/.jsonl rows")
    parser.add_argument("--cache-dir", type=Path, default=protocol.DEFAULT_CACHE_DIR)
    args = parser.parse_args(argv)
    out = corpus_dir(args.cache_dir, "train", args.name)
    if out.exists():
        sys.exit(f"corpus {args.name!r} already exists in {out}; remove it to rebuild")
    try:
        meta = build_corpus(
            documents_from(args.sources, args.column, args.cache_dir / "downloads"),
            args.cache_dir,
            args.name,
        )
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"corpus.py: {e}")
    sizes = json.dumps(meta["bytes"])
    print(f"corpus {args.name!r} in {out.parent}: {sizes} bytes; set CORPUS = {args.name!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
