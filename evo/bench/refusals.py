"""`evo bench refusals`: what a run spends when every proposal of its model is refused.

A model whose edits never apply (REPLACE DEFINITION of a name the program does not have) is paid
for every proposal and its repairs, and nothing is ever evaluated but the seed program. The run
uses the real engine and the real Anthropic client against a scripted Messages API server on
loopback (evo.bench.loopback; each request reports 1,000 input and 200 output tokens), on the
simulated target of evo.bench.truth, with `islands` islands and its defaults otherwise, until it
stops by itself. The row: requests and proposals made, dollars spent (the default model's
prices), seconds from the first request to the end of the run, and requests a second; the run
prints why it stopped.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from evo.bench.loopback import Reply, loopback_model
from evo.bench.throughput import local_ray
from evo.bench.truth import REGIMES, TruthEvaluation, write_truth_target
from evo.config import RunConfig
from evo.run.engine import Engine
from evo.target import load_target

NEVER_APPLIES = "HYPOTHESIS: z\nREPLACE DEFINITION Z IN edits.py\n```python\nZ = 1\n```\n"


def bench_refusals(islands: int = 4, evaluators: int = 2) -> list[dict]:
    """One run, one row."""
    times: list[float] = []

    def answer(_request: object) -> Reply:
        times.append(time.monotonic())
        return Reply(NEVER_APPLIES)

    with (
        loopback_model(answer),
        local_ray(),
        tempfile.TemporaryDirectory(prefix="evo-bench-") as scratch,
    ):
        folder = write_truth_target(Path(scratch) / "truth")
        settings = {
            "target": str(folder),
            "operator": "anthropic",
            "islands": islands,
            "evaluators": evaluators,
            "max_evals": 1000,
            "out": scratch,
        }
        config = RunConfig().with_settings(settings, "the benchmark")
        run_dir = Path(scratch) / "run"
        run_dir.mkdir()
        sandbox = TruthEvaluation(REGIMES["p3-g1"])
        state = Engine(config, load_target(folder), run_dir, sandbox=sandbox).run()
        stopped = time.monotonic()
    seconds = stopped - times[0] if times else 0.0
    return [
        {
            "islands": islands,
            "evaluators": evaluators,
            "requests": len(times),
            "proposals": state.next_id - 1,
            "spent_usd": round(state.spent, 4),
            "seconds": round(seconds, 1),
            "requests_per_second": round(len(times) / max(seconds, 1e-9), 2),
        }
    ]
