"""A target in two phases, end to end: what the run phase can see and write at each isolation
level, what the measure phase gets, and evo's clock on the run phase."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from evo.evaluate import isolation
from evo.evaluate.allowance import Allowance
from evo.evaluate.sandbox import evaluate
from evo.target import load_target

needs_namespaces = pytest.mark.skipif(
    not isolation.namespaces_work(), reason=f"no namespaces here: {isolation.why_not()}"
)

TOML = """
name = "phased"
mutable = ["variant.py"]
entry = "python run.py"
[metric]
name = "answer"
direction = "maximize"
[budget]
seconds = 1
timeout_seconds = 30
[measure]
entry = "python measure.py"
prepare = "python prep.py"
held_out = ["secret"]
held_out_cache = ["phased-held-out"]
handoff_seconds = 1
"""

PREP = """
from evo.target import protocol

cache = protocol.request(1).cache_dir
for folder, text in (("phased", "public"), ("phased-held-out", "42")):
    (cache / folder).mkdir(parents=True, exist_ok=True)
    (cache / folder / "data.txt").write_text(text)
"""

RUN = """
import time
from evo.target import protocol

req = protocol.request(1, phase="run")
import variant

protocol.ready(req)
seen = variant.look(req)
time.sleep(variant.TRAIN)
protocol.trained(req)
time.sleep(variant.AFTER)
(req.output_dir / "made.txt").write_text("made")
protocol.handoff(req, **seen)
"""

MEASURE = """
from evo.target import protocol

req = protocol.request(1, phase="measure")
handed = protocol.handed_off(req)
answer = float((req.cache_dir / "phased-held-out" / "data.txt").read_text())
answer += float(open("secret/answer.txt").read())
made = (req.output_dir / "made.txt").read_text()
protocol.report(req, answer, made=made, trained=req.trained_seconds, run_saw=json.dumps(handed))
""".replace("from evo", "import json\nfrom evo")

VARIANT = """
import os

TRAIN, AFTER, STEP = {train}, {after}, {step}
ROOT = {root!r}


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        return type(e).__name__


def look(req):
    cache = req.cache_dir
    try:
        with open(cache / "phased" / "data.txt", "a") as f:
            f.write("poison")
        poisoned = "done"
    except OSError as e:
        poisoned = type(e).__name__
    return {{
        "copy_secret": read("secret/answer.txt"),
        "target_secret": read(ROOT + "/secret/answer.txt"),
        "cache_held_out": read(cache / "phased-held-out" / "data.txt"),
        "cache_public": read(cache / "phased" / "data.txt"),
        "poisoned": poisoned,
        "files_here": ",".join(sorted(os.listdir("."))),
        **({{"longest_step_seconds": STEP}} if STEP is not None else {{}}),
    }}
"""


def phased(tmp_path: Path, train: float = 0.2, after: float = 0.0, step=None) -> tuple:
    """The phased target; its variant trains `train` s, hands off `after` s later, and says
    its longest step took `step` s (nothing when None)."""
    root = tmp_path / "phased"
    (root / "secret").mkdir(parents=True)
    (root / "secret" / "answer.txt").write_text("0.5")
    for name, text in (
        ("target.toml", TOML),
        ("prep.py", PREP),
        ("run.py", RUN),
        ("measure.py", MEASURE),
        ("variant.py", VARIANT.format(train=train, after=after, step=step, root=str(root))),
    ):
        (root / name).write_text(textwrap.dedent(text))
    return load_target(root), tmp_path / "cache"


@pytest.mark.parametrize(
    "level",
    [pytest.param("namespace", marks=needs_namespaces), "process"],
)
def test_the_run_phase_never_sees_held_out_data_and_the_measure_phase_does(tmp_path, level):
    target, cache = phased(tmp_path)
    result = evaluate(target, cache_dir=cache, isolation=level)
    assert (result.status, result.metric, result.phases) == ("ok", 42.5, "run+measure")
    saw = json.loads(result.details["run_saw"])
    assert result.details["made"] == "made"
    assert saw["copy_secret"] == "FileNotFoundError"  # never copied into its working copy
    assert "secret" not in saw["files_here"].split(",") and "run.py" in saw["files_here"]
    if level == "namespace":
        assert saw["target_secret"] == "FileNotFoundError"  # an empty folder in its place
        assert saw["cache_held_out"] == "FileNotFoundError"
        assert (saw["cache_public"], saw["poisoned"]) == ("public", "OSError")  # read-only
    else:  # not enforced at the process level, as the threat model says
        assert (saw["target_secret"], saw["cache_held_out"], saw["poisoned"]) == (
            "0.5",
            "42",
            "done",
        )
    # its training by evo's clock, from ready() to trained() (each seen within 10 ms), handed
    # to the measure phase
    assert 0.18 <= result.train_seconds == result.details["trained"] < 0.5


# reported longest step, the seed program's (None: not measured yet) -> the verdict on 3.3 s of
# training at a 1 s budget, 2.3 s past it: a margin of 2 s, and one step of what the variant
# says, up to twice the seed's where the run has measured it
CLOCK = {
    "no step reported": (None, None, "(+2.0s grace)"),
    "a step of 0.5 s, the seed's 0.25 s": (0.5, 0.25, ""),
    "a step of 9 s, before the seed was measured": (9.0, None, ""),
    "a step of 9 s, the seed's 0.1 s": (9.0, 0.1, "(+2.2s grace: a 0.2s step and a margin)"),
    "a step that is no number": ("'9'", None, "(+2.0s grace)"),
}


@pytest.mark.parametrize("case", CLOCK)
def test_the_clock_allows_one_step_past_the_budget(tmp_path, case):
    step, seeds, refused = CLOCK[case]
    target, cache = phased(tmp_path, train=3.3, step=step)
    allowance = None if seeds is None else Allowance(seeds, 5.0, 29.0)
    result = evaluate(target, cache_dir=cache, allowance=allowance)
    if not refused:
        assert result.status == "ok"
        return
    assert result.status == "invalid" and result.metric is None
    assert result.reason.startswith(f"trained 3.3s by evo's clock, past the 1s budget {refused}")


def test_a_run_phase_slow_to_hand_off_is_invalid(tmp_path):
    target, cache = phased(tmp_path, after=1.5)
    result = evaluate(target, cache_dir=cache)
    assert result.status == "invalid"
    assert result.reason.startswith("took 1.5s after training to hand off; the target allows 1s")


@pytest.mark.parametrize(
    "variant, status, reason",
    [
        ("raise SystemExit(0)", "invalid", "the run phase handed nothing off"),
        (
            "from evo.target import protocol\nprotocol.report(protocol.request(1, 'run'), 0.0)",
            "crash",
            "ValueError: the run phase cannot report a metric: hand off to the measure phase",
        ),
    ],
)
def test_a_run_phase_cannot_report(tmp_path, variant, status, reason):
    target, cache = phased(tmp_path)
    result = evaluate(target, {"variant.py": variant}, cache_dir=cache)
    assert (result.status, result.reason) == (status, reason)


def test_a_failed_prepare_step_is_a_crash_before_the_run(tmp_path):
    target, cache = phased(tmp_path)
    (target.root / "prep.py").write_text("raise SystemExit('no corpus here')\n")
    result = evaluate(target, cache_dir=cache)
    assert (result.status, result.reason) == ("crash", "no corpus here")
