"""How a run's leftovers become a status: only the fixed part's report can make a result ok."""

from __future__ import annotations

import json

import pytest

from evo.evaluate.result import EvalResult, classify
from evo.target import protocol

TRACEBACK = "Traceback (most recent call last):\n  File x\nValueError: bad\n"


@pytest.mark.parametrize(
    "reported, exit_code, timed_out, expected",
    [
        ({"status": "ok", "metric": 1.5}, 0, False, ("ok", 1.5, "")),
        ({"status": "ok", "metric": 2}, 0, False, ("ok", 2.0, "")),
        ({"status": "ok", "metric": 1.5}, 0, True, ("timeout", None, "killed at the hard timeout")),
        (None, 0, True, ("timeout", None, "killed at the hard timeout")),
        (None, 1, False, ("crash", None, "ValueError: bad")),
        ({"status": "ok", "metric": 1.5}, 1, False, ("crash", None, "ValueError: bad")),
        (None, -9, False, ("crash", None, "killed by SIGKILL")),
        ({"status": "invalid", "reason": "wrong"}, 0, False, ("invalid", None, "wrong")),
        ({"status": "invalid", "reason": "wrong"}, 3, False, ("invalid", None, "wrong")),
        (None, 0, False, ("invalid", None, "the metric was never reported")),
        ({"status": "ok", "metric": None}, 0, False, ("invalid", None, "the metric is not finite")),
        ({"status": "ok", "metric": "1"}, 0, False, ("invalid", None, "the report is malformed")),
        ({"status": "ok", "metric": True}, 0, False, ("invalid", None, "the report is malformed")),
        ({"status": "malformed"}, 0, False, ("invalid", None, "the report is malformed")),
    ],
)
def test_classify(reported, exit_code, timed_out, expected):
    assert classify(reported, exit_code, timed_out, TRACEBACK) == expected


def test_crash_without_stderr_names_the_exit_status():
    assert classify(None, 4, False, "") == ("crash", None, "exited with status 4")


def test_summary_is_one_line():
    result = EvalResult(
        "ok",
        "val_bpb",
        3.14159,
        7,
        "cpu",
        60.0,
        60.02,
        71.5,
        512.4,
        details={"tokens": 1000, "mfu": 0.41234},
    )
    assert result.summary() == (
        "ok val_bpb=3.1416 train=60.0s wall=71.5s rss=512MB tokens=1000 mfu=0.4123 "
        "seed=7 device=cpu"
    )
    assert json.loads(result.to_json())["details"] == {"tokens": 1000, "mfu": 0.41234}


def test_request_hides_the_result_channel_and_report_writes_it(tmp_path, monkeypatch):
    path = tmp_path / "result.json"
    for name, value in [
        (protocol.RESULT_PATH, str(path)),
        (protocol.BUDGET_SECONDS, "2.5"),
        (protocol.SEED, "9"),
        (protocol.DEVICE, "cpu"),
        (protocol.THREADS, "3"),
        (protocol.CACHE_DIR, str(tmp_path)),
    ]:
        monkeypatch.setenv(name, value)
    req = protocol.request(default_budget_seconds=60)
    assert (req.budget_seconds, req.seed, req.threads, req.result_path) == (2.5, 9, 3, path)
    assert protocol.RESULT_PATH not in __import__("os").environ
    protocol.report(req, float("nan"), tokens=5)
    assert json.loads(path.read_text()) == {"status": "ok", "metric": None, "tokens": 5}
    protocol.report_invalid(req, "wrong answer")
    assert json.loads(path.read_text()) == {"status": "invalid", "reason": "wrong answer"}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_by_hand_the_request_has_defaults_and_report_prints(monkeypatch, capsys):
    for name in (protocol.RESULT_PATH, protocol.BUDGET_SECONDS, protocol.SEED, protocol.DEVICE):
        monkeypatch.delenv(name, raising=False)
    req = protocol.request(default_budget_seconds=12)
    assert (req.budget_seconds, req.seed, req.device, req.result_path) == (12.0, 0, "cpu", None)
    protocol.report(req, 1.25)
    assert json.loads(capsys.readouterr().out) == {"status": "ok", "metric": 1.25}
