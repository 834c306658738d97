"""A candidate on its way through a run, and the lineage rows that record it.

A candidate is a proposed child: its sources and what the operator said of it, then each of its
evaluations (evaluation k runs on the run's k-th seed). Its row goes to the lineage once its fate
is final: accepted, kept, rejected, crash, invalid, timeout, or refused before evaluation.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from evo.mutate.proposal import program_hash
from evo.search.island import ACCEPT


@dataclass
class Candidate:
    id: int
    island: int
    parent_id: int | None
    generation: int
    sources: dict[str, str]
    operator: str = "seed"
    model: str | None = None
    hypothesis: str = ""
    edit: str = ""
    usage: dict = field(default_factory=dict)
    mutation_s: float = 0.0
    created_at: float = field(default_factory=time.time)
    metrics: dict[int, float] = field(default_factory=dict)  # seed index -> metric
    evals: list[dict] = field(default_factory=list)

    @property
    def fitness(self) -> float | None:
        return mean(self.metrics)

    def as_member(self) -> dict:
        return {
            "id": self.id,
            "sources": self.sources,
            "metrics": self.metrics,
            "generation": self.generation,
        }

    def add_evaluation(self, index: int, seed: int, outcome: dict, dispatched: float) -> dict:
        """Record an evaluator's outcome for seed index `index`, sent to it at `dispatched`
        (epoch seconds) and back now; return the evaluation."""
        result = outcome["result"]
        if result["status"] == "ok":
            self.metrics[index] = result["metric"]
        evaluation = {
            "seed": seed,
            "status": result["status"],
            "metric": result["metric"],
            "reason": result["reason"],
            "wall": result["wall_seconds"],
            "queued": max(0.0, dispatched - self.created_at),
            "dispatched": dispatched,
            "returned": time.time(),
            "evaluator": outcome["evaluator"],
            "node": outcome["node"],
            "gpu": outcome["gpu"],
        }
        self.evals.append(evaluation)
        return evaluation


def candidate_row(run_id: str, candidate: Candidate, status: str, reason: str) -> dict:
    evals, usage = candidate.evals, candidate.usage
    return {
        "run_id": run_id,
        "event": "candidate",
        "candidate_id": candidate.id,
        "parent_id": candidate.parent_id,
        "island": candidate.island,
        "generation": candidate.generation,
        "operator": candidate.operator,
        "model": candidate.model,
        "hypothesis": candidate.hypothesis,
        "edit": candidate.edit,
        "code_hash": program_hash(candidate.sources) if candidate.sources else None,
        "sources": json.dumps(candidate.sources) if candidate.sources else None,
        "status": status,
        "reason": reason,
        "metrics": [e["metric"] for e in evals],
        "seeds": [e["seed"] for e in evals],
        "eval_statuses": [e["status"] for e in evals],
        "fitness": candidate.fitness,
        "accepted": status == ACCEPT,
        "evaluator": _joined(e["evaluator"] for e in evals),
        "node": _joined(e["node"] for e in evals),
        "gpu": _joined(e["gpu"] for e in evals),
        "queued_s": evals[0]["queued"] if evals else None,
        "eval_evaluators": [e["evaluator"] for e in evals],
        "eval_dispatched_at": [utc(e["dispatched"]) for e in evals],
        "eval_returned_at": [utc(e["returned"]) for e in evals],
        "eval_seconds": [e["wall"] for e in evals],
        "mutation_s": candidate.mutation_s,
        "evaluation_s": sum(e["wall"] for e in evals) if evals else None,
        "input_tokens": usage.get("input_tokens"),
        "output_tokens": usage.get("output_tokens"),
        "cache_write_tokens": usage.get("cache_write_tokens"),
        "cache_read_tokens": usage.get("cache_read_tokens"),
        "cost_usd": usage.get("cost_usd"),
        "created_at": utc(candidate.created_at),
        "finished_at": utc(time.time()),
    }


def event_row(
    run_id: str, kind: str, candidate_id: int, source: int, dest: int, status: str
) -> dict:
    """A migration (or a reset) of program `candidate_id` from island `source` to `dest`."""
    now = utc(time.time())
    return {
        "run_id": run_id,
        "event": kind,
        "candidate_id": candidate_id,
        "island": dest,
        "from_island": source,
        "to_island": dest,
        "status": status,
        "accepted": status == ACCEPT,
        "created_at": now,
        "finished_at": now,
    }


def member_fitness(member: dict) -> float:
    """Fitness of a member dict, whose metric keys may have become strings in a checkpoint."""
    return mean({int(k): v for k, v in member["metrics"].items()})


def mean(metrics: dict) -> float | None:
    return sum(metrics.values()) / len(metrics) if metrics else None


def utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _joined(values) -> str | None:
    return ",".join(sorted({v for v in values if v})) or None
