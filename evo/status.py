"""Every status a program can have in a run, and the kinds of lineage rows: one vocabulary.

String enums, so that they compare equal to the strings the lineage, the checkpoint and the
tests hold, and cross Ray and JSON as plain strings.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    # One evaluation's outcome (evo.evaluate.result), and a candidate's fate when it failed.
    OK = "ok"  # a finite metric
    CRASH = "crash"  # a non-zero exit and no verdict of the fixed part
    TIMEOUT = "timeout"  # killed at the hard timeout
    INVALID = "invalid"  # ran, but could not be scored (or the fixed part refused it)
    OOM = "oom"  # stopped at the evaluation's memory cap
    # The island's verdict on an evaluated candidate (evo.search.island).
    ACCEPTED = "accepted"  # the island's new champion
    REPEAT = "repeat"  # promising within the noise: evaluate it again (never final)
    KEPT = "kept"  # joins the population, does not beat the champion
    REJECTED = "rejected"  # no better than the worst of a full population
    SCREENED = "screened"  # clearly behind its parent at the screen's budget (evo.run.screen)
    # Never evaluated: the operator made no valid child, or the run had the program already.
    REFUSED = "refused"
    # A reset or split row's: the island started (again) from another island's program.
    RESET = "reset"


class Event(StrEnum):
    """What a lineage row records."""

    CANDIDATE = "candidate"  # a proposed child and its fate
    MIGRATION = "migration"  # a program sent to the next island round the ring
    RESET = "reset"  # a stagnating island restarted from the run's best
    SPLIT = "split"  # a closed island opened, founded from the best island's runner-up
    CONFIRMATION = "confirmation"  # a program measured again on a fresh seed (evo.run.confirm)
