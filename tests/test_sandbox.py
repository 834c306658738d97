"""Real evaluations in real subprocesses: every way a variant can end, and what it is told."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cpu_threads, dead_soon, train_variant

from evo.errors import UsageError
from evo.evaluate.sandbox import child_environment, evaluate

BUDGET = 2.0  # seconds of training: enough for the clock to run, short enough for CI
# Variants that use os, open or __import__ break the targets' static rules; the tests that run
# them anyway (check_rules=False) show that the sandbox holds even behind broken rules.
UNCHECKED = {"check_rules": False}


def run_gpt(gpt, cache_dir, sources=None, **overrides):
    options = {"budget_seconds": BUDGET, "device": "cpu", "threads": cpu_threads()}
    return evaluate(gpt, sources, cache_dir=cache_dir, **(options | overrides))


def test_baseline_is_ok_with_a_finite_metric(gpt, cache_dir):
    result = run_gpt(gpt, cache_dir)
    assert (result.status, result.reason) == ("ok", "")
    assert math.isfinite(result.metric) and 0 < result.metric < 8.0  # 8.0: a uniform guess
    assert result.details["params"] == 851_968
    assert result.details["steps"] >= 2
    assert result.details["tokens"] == result.details["steps"] * 8 * 256
    # evo sees the clock's marks by polling (every 10 ms at most): its reading of a training that
    # stopped at the budget can be that much short of it (1.9965 s once in CI)
    assert BUDGET - 0.05 <= result.train_seconds <= BUDGET + 2.0
    assert result.wall_seconds > result.train_seconds
    assert result.peak_rss_mb > 50
    assert result.stderr_tail == ""


def test_a_raising_variant_is_a_crash_with_its_traceback(gpt, cache_dir):
    result = run_gpt(gpt, cache_dir, train_variant(gpt, head="raise RuntimeError('boom 42')"))
    assert (result.status, result.metric) == ("crash", None)
    assert result.reason == "RuntimeError: boom 42"
    assert "Traceback (most recent call last)" in result.stderr_tail
    assert 'train.py", line' in result.stderr_tail


def test_a_variant_that_sleeps_forever_is_killed_at_the_timeout(gpt, cache_dir):
    result = run_gpt(
        gpt, cache_dir, train_variant(gpt, head="import time\ntime.sleep(10**6)"), timeout_seconds=6
    )
    assert (result.status, result.reason) == ("timeout", "killed at the hard timeout")
    assert 6 <= result.wall_seconds < 12


FORK_AND_HANG = """
import os, signal, time
child = os.fork()
if child == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(10**6)
open({pids!r}, "w").write(f"{{os.getpid()}} {{child}}")
{then}
"""


@pytest.mark.parametrize(
    "then, status",
    [("time.sleep(10**6)", "timeout"), ("raise RuntimeError('gone')", "crash")],
)
def test_no_process_outlives_its_evaluation(gpt, cache_dir, tmp_path, then, status):
    pids_file = tmp_path / "pids"
    head = FORK_AND_HANG.format(pids=str(pids_file), then=then)
    variant = train_variant(gpt, head=head)
    result = run_gpt(gpt, cache_dir, variant, timeout_seconds=6, **UNCHECKED)
    assert result.status == status
    parent, child = map(int, pids_file.read_text().split())
    assert dead_soon(parent) and dead_soon(child)


def test_printed_metrics_are_never_read(gpt, cache_dir):
    shout = "print('val_bpb: 0.1'); print('val_bpb: 0.1', file=__import__('sys').stderr)"
    trained = run_gpt(gpt, cache_dir, train_variant(gpt, tail=shout), **UNCHECKED)
    assert trained.status == "ok" and trained.metric > 1.0

    quits = run_gpt(gpt, cache_dir, train_variant(gpt, head=shout + "\nexit(0)"), **UNCHECKED)
    assert (quits.status, quits.metric) == ("invalid", None)
    assert quits.reason == "the run phase handed nothing off"


def test_a_diverged_model_is_invalid(gpt, cache_dir):
    poison = "for p in model.parameters():\n    p.data.fill_(float('nan'))"
    result = run_gpt(gpt, cache_dir, train_variant(gpt, tail=poison))
    assert (result.status, result.metric) == ("invalid", None)
    assert result.reason == "the model's logits are not finite (did the training diverge?)"


def test_a_model_that_reads_the_next_token_is_refused(gpt, cache_dir):
    peek = """
class Peek(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
    def forward(self, idx):
        ahead = F.one_hot(idx.roll(-1, dims=1), 256).float()
        return self.inner(idx) + 20 * ahead
model = Peek(model)
"""
    result = run_gpt(gpt, cache_dir, train_variant(gpt, tail=peek))
    assert (result.status, result.metric) == ("invalid", None)
    assert result.reason == "the model is not causal: predictions depend on later tokens"


def test_training_past_the_budget_is_invalid(gpt, cache_dir):
    overtime = "import time\ntime.sleep(5)"
    result = run_gpt(gpt, cache_dir, train_variant(gpt, tail=overtime))
    assert result.status == "invalid"
    assert "past the 2s budget" in result.reason


SLOW_LAST_STEP = """
import time
inner = run.batches
def slow_batches(*args, **kwargs):
    # the step that begins just short of the budget ends 2.5 s past it
    for step, batch in enumerate(inner(*args, **kwargs)):
        yield batch
        if step == 1:
            time.sleep(max(0.0, run.budget_seconds - 0.05 - run.elapsed()))
        elif step == 2:
            time.sleep(2.5)
run.batches = slow_batches
"""


def test_a_step_that_ends_past_the_budget_on_a_busy_cpu_counts(gpt, cache_dir):
    """One step's time is allowed past the budget beside the 2 s margin: on a CPU that other
    jobs keep busy a step can take longer than the margin alone, and the variant did nothing
    wrong (it stopped when run.batches() ended)."""
    spinning = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cpu_threads())
    ]
    try:
        result = run_gpt(gpt, cache_dir, train_variant(gpt, SLOW_LAST_STEP), budget_seconds=3.0)
    finally:
        for process in spinning:
            process.kill()
            process.wait()
    assert (result.status, result.reason) == ("ok", "")
    assert result.details["longest_step_seconds"] >= 2.5
    assert result.train_seconds > 3.0 + 2.0  # past what the margin alone allows


def test_the_variant_sees_no_secret(gpt, cache_dir, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-secret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-test-secret")
    monkeypatch.setenv("CUDA_AUTH_TOKEN", "cuda-test-secret")
    monkeypatch.setenv("SOME_SERVICE_PASSWORD", "hunter2")
    show = "import os\nraise RuntimeError('ENV ' + str(os.environ))"
    result = run_gpt(gpt, cache_dir, train_variant(gpt, head=show), **UNCHECKED)
    assert result.status == "crash"
    seen = result.stderr_tail
    assert result.reason.startswith("RuntimeError: ENV environ(")
    assert "'PATH'" in seen and "'EVO_SEED': '0'" in seen
    for secret in (
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "CUDA_AUTH_TOKEN",
        "PASSWORD",
        "secret",
        "hunter2",
        "EVO_RESULT_PATH",
    ):
        assert secret not in result.stderr_tail


def test_the_target_folder_is_never_written(sort_target, tmp_path):
    before = {p: p.read_bytes() for p in sort_target.root.rglob("*") if p.is_file()}
    marker = tmp_path / "ran"
    vandal = sort_target.read_mutable()["sort.py"] + (
        f"\nopen('bench.py', 'w').write('x')\nopen('sort.py', 'a').write('#')"
        f"\nopen({str(marker)!r}, 'w').write('ran')\n"
    )
    result = evaluate(
        sort_target, {"sort.py": vandal}, budget_seconds=0.5, device="cpu", **UNCHECKED
    )
    assert result.status == "ok" and marker.read_text() == "ran"
    after = {p: p.read_bytes() for p in sort_target.root.rglob("*") if p.is_file()}
    assert after == before


def test_sort_baseline_is_ok(sort_target):
    result = evaluate(sort_target, budget_seconds=0.5, device="cpu")
    assert result.status == "ok" and result.metric > 0
    assert result.details["rounds"] >= 3
    kinds = ["random_ms", "sorted_ms", "reversed_ms", "few-distinct_ms", "short-lists_ms"]
    assert sorted(result.details) == sorted(["rounds", *kinds])
    assert math.isclose(result.metric, sum(result.details[k] for k in kinds), rel_tol=1e-3)


@pytest.mark.parametrize(
    "body, reason",
    [
        ("return list(values)", "wrong output on round 0: random: wrong value at index 0"),
        ("return list(values)[1:]", "wrong output on round 0: random: returned 19999 values"),
        ("return tuple(values)", "wrong output on round 0: random: sort_ints returned tuple"),
    ],
)
def test_an_incorrect_sort_is_invalid(sort_target, body, reason):
    source = f"def sort_ints(values):\n    {body}\n"
    result = evaluate(sort_target, {"sort.py": source}, budget_seconds=0.5, device="cpu")
    assert (result.status, result.metric) == ("invalid", None)
    assert result.reason.startswith(reason)


def test_only_mutable_files_can_be_replaced(sort_target):
    with pytest.raises(UsageError, match="bench.py is not a mutable file of target sort"):
        evaluate(sort_target, {"bench.py": "print('hi')"}, device="cpu")


def test_cpu_evaluations_see_no_gpu_and_the_threads_they_were_given():
    env = child_environment({}, device="cpu", threads=3)
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env["OMP_NUM_THREADS"] == "3"
    assert Path(env["PYTHONPATH"], "evo", "target", "protocol.py").is_file()


def test_a_model_that_cannot_be_exported_is_refused_with_the_exporters_reason(gpt, cache_dir):
    branchy = """
class Branchy(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, idx):
        if idx.float().mean() > 1000:  # data-dependent Python control flow
            return self.inner(idx) * 2
        return self.inner(idx)


model = Branchy(model)
"""
    result = run_gpt(gpt, cache_dir, train_variant(gpt, tail=branchy))
    assert result.status == "invalid" and "\n" not in result.reason
    assert result.reason.startswith("the model cannot be exported for measurement: ")
