"""`evo export --git`: the winning lineage as a git history, one commit per accepted step."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from evo.errors import UsageError
from evo.store.reader import Lineage, sources
from evo.views.confirmation import of_candidate


def export_git(lineage: Lineage, run_id: str, dest: Path) -> int:
    """Write the best program's ancestry as commits in a new repository; return the count."""
    best = lineage.best(run_id)
    if best is None:
        raise UsageError(f"run {run_id} has no accepted candidate to export")
    if dest.exists() and any(dest.iterdir()):
        raise UsageError(f"{dest} exists and is not empty; pass a new folder to --git")
    dest.mkdir(parents=True, exist_ok=True)
    metric = lineage.runs[run_id].metric
    _git(dest, {}, "init", "-q", "-b", "evo")
    chain = lineage.ancestry(run_id, best[0])
    for step in chain:
        row = lineage.candidate(run_id, step["candidate_id"])
        for name, text in sources(row).items():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_text(text)
        stamp = row["finished_at"].isoformat()
        env = {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
        trailers = (
            f"Evo-Run: {run_id}\nEvo-Candidate: {row['candidate_id']}\n"
            f"Evo-Island: {row['island']}\nEvo-Metric: {metric}={row['fitness']:.6g}"
        )
        for confirmed in of_candidate(lineage, run_id, row["candidate_id"]):  # evo confirm
            trailers += f"\nEvo-Confirmed: {confirmed.text(metric)}"
        _git(dest, env, "add", "-A")
        _git(
            dest,
            env,
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            row["hypothesis"] or "the seed program",
            "-m",
            trailers,
        )
    return len(chain)


def _git(folder: Path, env: dict[str, str], *args: str) -> None:
    identity = {
        "GIT_AUTHOR_NAME": "evo",
        "GIT_AUTHOR_EMAIL": "evo@localhost",
        "GIT_COMMITTER_NAME": "evo",
        "GIT_COMMITTER_EMAIL": "evo@localhost",
    }
    done = subprocess.run(
        ["git", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, **identity, **env},
    )
    if done.returncode:
        raise UsageError(f"git {args[0]} failed in {folder}: {done.stderr.strip()}")
