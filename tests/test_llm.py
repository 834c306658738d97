"""The LLM operator with the real anthropic client (and plain HTTP for the OpenAI-compatible
backend) against a scripted server on 127.0.0.1: formats, repairs, retries, costs, the cap."""

from __future__ import annotations

import pytest
from conftest import evo

from evo.bench.loopback import Reply
from evo.mutate.llm import LLMConfig, LLMOperator, Price
from evo.mutate.prompt import (
    CHANGING_PART_CHARS,
    Attempt,
    Inspiration,
    Mate,
    Measured,
    short_tail,
    task_text,
)
from evo.mutate.proposal import Validator

SEARCH_REPLY = """HYPOTHESIS: a cut-off of 16 suits these inputs
<<<<<<< SEARCH
INSERTION_THRESHOLD = 8  # runs this short are cheaper to insertion-sort than to split
=======
INSERTION_THRESHOLD = 16  # runs this short are cheaper to insertion-sort than to split
>>>>>>> REPLACE
"""
DEFINITION_REPLY = """HYPOTHESIS: a cut-off of 12
REPLACE DEFINITION INSERTION_THRESHOLD IN sort.py
```python
INSERTION_THRESHOLD = 12
```
"""
PRICE = Price(input=1.0, output=5.0, cache_write=1.25, cache_read=0.1)
USAGE = {
    "input_tokens": 1000,
    "output_tokens": 200,
    "cache_creation_input_tokens": 4000,
    "cache_read_input_tokens": 0,
}
USAGE_COST = (1000 * 1.0 + 200 * 5.0 + 4000 * 1.25) / 1e6


@pytest.fixture
def anthropic_env(monkeypatch, model_server):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    return model_server


def operator(target, server, backend="anthropic", **options) -> LLMOperator:
    url = server.url + ("/v1" if backend == "openai" else "")
    options = {"max_retries": 2, "timeout_seconds": 5.0} | options
    config = LLMConfig(
        backend=backend,
        base_url=url,
        models=(("test-model", 1.0),),
        prices={"test-model": PRICE},
        **options,
    )
    return LLMOperator(Validator(target), config, seed=0)


@pytest.mark.parametrize(
    "reply, hypothesis, threshold",
    [
        (SEARCH_REPLY, "a cut-off of 16 suits these inputs", "16"),
        (DEFINITION_REPLY, "a cut-off of 12", "12"),
        (
            "HYPOTHESIS: rewrite\nREWRITE sort.py\n```python\nINSERTION_THRESHOLD = 4\n"
            "def sort_ints(values):\n    return list(values)\n```\n",
            "rewrite",
            "4",
        ),
    ],
)
def test_each_edit_format_gives_a_valid_child(
    sort_target, anthropic_env, reply, hypothesis, threshold
):
    anthropic_env.reset(Reply(reply, usage=USAGE))
    proposal = operator(sort_target, anthropic_env).propose(sort_target.read_mutable(), metric=72.5)
    assert proposal.valid and proposal.rejections == ()
    assert (proposal.operator, proposal.model, proposal.hypothesis) == (
        "anthropic",
        "test-model",
        hypothesis,
    )
    assert f"INSERTION_THRESHOLD = {threshold}" in proposal.child["sort.py"]
    u = proposal.usage
    assert (u.input_tokens, u.output_tokens, u.cache_write_tokens, u.cache_read_tokens) == (
        1000,
        200,
        4000,
        0,
    )
    assert u.cost_usd == pytest.approx(USAGE_COST) and u.latency_seconds > 0


def test_the_request_caches_the_stable_prefix_and_puts_the_change_last(sort_target, anthropic_env):
    anthropic_env.reset(Reply(SEARCH_REPLY))
    history = [Attempt("cut-off 4", "sort.py: replace INSERTION_THRESHOLD", "ok", delta=+3.5)]
    inspirations = [Inspiration({"sort.py": "# best so far\n"}, 70.1, island=2)]
    operator(sort_target, anthropic_env).propose(
        sort_target.read_mutable(), metric=72.5, history=history, inspirations=inspirations
    )
    [request] = anthropic_env.requests
    assert request.path == "/v1/messages"
    assert request.headers.get(
        "x-api-key"
    ) == "sk-ant-test" or "sk-ant-test" in request.headers.get("authorization", "")
    assert "anthropic-version" in request.headers
    body = request.body
    assert body["model"] == "test-model" and body["max_tokens"] == 4096
    [system] = body["system"]
    assert system["cache_control"] == {"type": "ephemeral"}
    assert "sort_ints(values)" in system["text"] and "HYPOTHESIS:" in system["text"]  # program.md
    [user] = body["messages"]
    stable, changing = user["content"]
    assert stable["cache_control"] == {"type": "ephemeral"}
    assert "## bench.py (fixed, read-only)" in stable["text"] and "## sort.py" not in stable["text"]
    assert "cache_control" not in changing
    text = changing["text"]
    assert text.index("Inspiration 1: runtime_ms = 70.1, island 2") < text.index(
        "[ok, delta +3.5] cut-off 4"
    )
    assert text.index("[ok, delta +3.5]") < text.index("The parent to improve: runtime_ms = 72.5")


def test_a_recombination_shows_both_parents_and_asks_to_combine(sort_target, anthropic_env):
    anthropic_env.reset(Reply(SEARCH_REPLY, usage=USAGE))
    parent = sort_target.read_mutable()
    second = {"sort.py": parent["sort.py"].replace("INSERTION_THRESHOLD = 8", "X = 1\n# mate")}
    mate = Mate(12, second, 70.25, "a cut-off of 16 insertion-sorts longer runs", "merge less")
    proposal = operator(sort_target, anthropic_env).propose(parent, metric=72.5, mate=mate)
    assert proposal.valid and proposal.mate_id == 12
    text = anthropic_env.requests[0].body["messages"][0]["content"][1]["text"]
    assert text.index(
        "# The parent to improve: runtime_ms = 72.5\n\nIt was made by this hypothesis: merge less"
    ) < text.index(
        "# A second parent, program #12: runtime_ms = 70.25\n"
        "It was made by this hypothesis: a cut-off of 16 insertion-sorts longer runs\n"
    )
    assert "# mate" in text and "Propose one new hypothesis" not in text
    assert text.endswith(
        "Combine the two: propose an edit of the parent that brings in what the second parent "
        "changed for the better while keeping the parent's own gains, with the hypothesis of "
        "why they add up, in the reply format."
    )
    alone = operator(sort_target, anthropic_env)
    anthropic_env.reset(Reply(SEARCH_REPLY, usage=USAGE))
    assert alone.propose(parent).mate_id is None


def test_a_rejected_reply_is_repaired_with_its_reason(sort_target, anthropic_env):
    bad = SEARCH_REPLY.replace("INSERTION_THRESHOLD = 8", "INSERTION_THRESHOLD = 9")
    anthropic_env.reset(
        Reply(bad, usage=USAGE), Reply("no idea", usage=USAGE), Reply(SEARCH_REPLY, usage=USAGE)
    )
    proposal = operator(sort_target, anthropic_env).propose(sort_target.read_mutable())
    assert proposal.valid
    assert proposal.rejections == (
        "SEARCH block 1 (sort.py) matches nothing; no line of the file matches its first line "
        "`INSERTION_THRESHOLD = 9  # runs this short are cheaper to insertion-sort than to`",
        "the reply has no edit in a known form (SEARCH/REPLACE, REPLACE DEFINITION or REWRITE); "
        "use one of them exactly",
    )
    assert proposal.usage.cost_usd == pytest.approx(3 * USAGE_COST)
    roles = [m["role"] for m in anthropic_env.requests[2].body["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    repair = anthropic_env.requests[1].body["messages"][2]["content"]
    assert repair.startswith("Your proposal was rejected: SEARCH block 1 (sort.py) matches nothing")


@pytest.mark.parametrize(
    "reply, reason",
    [
        (
            "HYPOTHESIS: h\nREWRITE sort.py\n```python\ndef sort_ints(values:\n```\n",
            "sort.py:1: does not parse",
        ),
        (
            "HYPOTHESIS: h\nREWRITE bench.py\n```python\nx = 1\n```\n",
            "edit 1 changes bench.py, which is not a mutable file (mutable: sort.py)",
        ),
        (
            "HYPOTHESIS: h\nREWRITE sort.py\n```python\n"
            "def sort_ints(v):\n    return sorted(v)\n```\n",
            "sort.py:2: uses 'sorted', which the target forbids",
        ),
        (
            "HYPOTHESIS: h\nREPLACE DEFINITION merge IN sort.py\n"
            "```python\ndef merge():\n    pass\n```\n",
            "edit 1 (sort.py, merge): no top-level function, class or assignment named merge",
        ),
    ],
)
def test_three_rejections_give_no_child(sort_target, anthropic_env, reply, reason):
    anthropic_env.reset(*[Reply(reply)] * 3)
    proposal = operator(sort_target, anthropic_env).propose(sort_target.read_mutable())
    assert not proposal.valid and len(proposal.rejections) == 3
    assert all(r.startswith(reason) for r in proposal.rejections)
    assert len(anthropic_env.requests) == 3


@pytest.mark.parametrize("status", [429, 529, 500])
def test_the_client_retries_service_errors(sort_target, anthropic_env, status):
    anthropic_env.reset(Reply(status=status), Reply(SEARCH_REPLY))
    proposal = operator(sort_target, anthropic_env).propose(sort_target.read_mutable())
    assert proposal.valid and len(anthropic_env.requests) == 2


@pytest.mark.parametrize(
    "replies, reason",
    [
        ([Reply(status=529)] * 3, "the model service failed: OverloadedError"),
        ([Reply(status=400)], "the model service failed: BadRequestError"),
        ([Reply(SEARCH_REPLY, delay=2.0)] * 3, "the model service failed: APITimeoutError"),
        ([Reply(raw=b"not json at all")] * 3, "the model service failed"),
    ],
)
def test_service_failures_end_the_proposal_with_a_reason(
    sort_target, anthropic_env, replies, reason
):
    anthropic_env.reset(*replies)
    op = operator(sort_target, anthropic_env, timeout_seconds=0.5)
    proposal = op.propose(sort_target.read_mutable())
    assert not proposal.valid
    [rejection] = proposal.rejections
    assert rejection.startswith(reason)


def test_output_beyond_the_requested_max_tokens_is_not_charged(sort_target, anthropic_env):
    verbose = {**USAGE, "output_tokens": 5000}  # a server that ignores max_tokens
    anthropic_env.reset(Reply(SEARCH_REPLY, usage=verbose))
    proposal = operator(sort_target, anthropic_env, max_tokens=200).propose(
        sort_target.read_mutable()
    )
    assert proposal.usage.output_tokens == 5000
    assert proposal.usage.cost_usd == pytest.approx(USAGE_COST)  # 200 output tokens charged


def test_the_ensemble_draws_models_by_weight(sort_target, anthropic_env):
    anthropic_env.reset(*[Reply(SEARCH_REPLY.replace("16", str(n))) for n in range(20, 60)])
    config = LLMConfig(
        base_url=anthropic_env.url, models=(("fast", 3.0), ("strong", 1.0)), repairs=0
    )
    op = LLMOperator(Validator(sort_target), config, seed=5)
    models = [op.propose(sort_target.read_mutable()).model for _ in range(40)]
    assert models.count("fast") == 26 and models.count("strong") == 14  # seeded: exact
    assert [r.body["model"] for r in anthropic_env.requests] == models


def test_the_openai_backend(sort_target, model_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    usage = {"input_tokens": 300, "output_tokens": 50, "cache_read_input_tokens": 700}
    model_server.reset(Reply(status=429), Reply(SEARCH_REPLY, usage=usage))
    proposal = operator(sort_target, model_server, backend="openai").propose(
        sort_target.read_mutable()
    )
    assert proposal.valid and proposal.operator == "openai"
    u = proposal.usage
    assert (u.input_tokens, u.output_tokens, u.cache_read_tokens) == (300, 50, 700)
    assert u.cost_usd == pytest.approx((300 * 1.0 + 50 * 5.0 + 700 * 0.1) / 1e6)
    request = model_server.requests[-1]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-local"
    assert [m["role"] for m in request.body["messages"]] == ["system", "user"]


def test_propose_command_with_the_anthropic_operator(model_server):
    model_server.reset(Reply(SEARCH_REPLY, usage=USAGE))
    env = {
        "PATH": "/usr/bin:/bin",
        "ANTHROPIC_API_KEY": "sk-ant-test",
        "ANTHROPIC_BASE_URL": model_server.url,
    }
    done = evo("propose", "targets/sort", "--model", "claude-haiku-4-5", env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "operator: anthropic  model: claude-haiku-4-5"
    assert (
        lines[1]
        == "tokens: input 1000, output 200, cache write 4000, cache read 0; cost $0.0070; "
        + lines[1].split("; ")[-1]
    )
    assert lines[2] == "hypothesis: a cut-off of 16 suits these inputs"
    assert (
        "-INSERTION_THRESHOLD = 8  # runs" in done.stdout
        and "+INSERTION_THRESHOLD = 16  # runs" in done.stdout
    )


def test_propose_command_offline_and_its_errors():
    done = evo("propose", "targets/sort", "--operator", "offline", "--seed", "2", timeout=60)
    assert done.returncode == 0
    assert done.stdout.startswith("operator: offline\nhypothesis: INSERTION_THRESHOLD 8 -> ")
    assert "--- a/sort.py\n+++ b/sort.py\n" in done.stdout
    failed = evo("propose", "targets/sort", "--operator", "openai", timeout=60)
    assert failed.returncode == 2
    assert (
        failed.stderr
        == "evo: error: the openai operator needs --model NAME (the server's model name)\n"
    )


def test_the_prompt_shows_what_was_measured_the_noise_and_a_crash_tail(sort_target):
    crash = Attempt(
        "a deeper recursion", "sort.py: replace definition of sort_ints", "crash", None,
        "RecursionError: maximum recursion depth exceeded",
        short_tail("\n".join(f"  frame {i}" for i in range(40)) + "\nRecursionError: maximum"),
    )  # fmt: skip
    measured = Measured({"train_seconds": 1.5, "machine": "CPU, 2 threads (x86_64)"}, 0.25, 0.5)
    text = task_text(sort_target, sort_target.read_mutable(), 72.5, [crash], [], measured)
    assert (
        "- [crash] a deeper recursion | sort.py: replace definition of sort_ints "
        "(RecursionError: maximum recursion depth exceeded)\n  stderr, last lines:\n"
        "      frame 35\n      frame 36\n      frame 37\n      frame 38\n      frame 39\n"
        "    RecursionError: maximum\n"
    ) in text
    assert (
        "# The parent to improve: runtime_ms = 72.5\n\n"
        "What its evaluation measured besides the metric:\n- train_seconds: 1.5\n"
        "- machine: CPU, 2 threads (x86_64)\n- noise: the difference in runtime_ms between two "
        "programs on the same seed varies by sigma 0.25 between seeds; a child must gain more "
        "than 0.5 on one evaluation to count (less on several)\n"
    ) in text


def test_the_changing_part_keeps_within_its_budget(sort_target):
    parent = sort_target.read_mutable()
    big = Inspiration({"sort.py": "x = 1\n" * 5000}, 70.0, 1)  # 30,000 characters each
    history = [Attempt(f"idea {i}", "sort.py: an edit", "rejected") for i in range(20)]
    text = task_text(sort_target, parent, 72.5, history, [big, big], Measured({}))
    assert len(text) <= CHANGING_PART_CHARS
    assert "## Inspiration 1:" in text and "## Inspiration 2:" not in text  # the second left out
    assert "idea 0 |" in text and parent["sort.py"] in text  # every attempt and the parent kept
