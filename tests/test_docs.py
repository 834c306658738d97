"""The documentation is true: the worked example of targets/README.md is a real target, every
command the README shows runs as shown, and every relative link of the README and docs/ leads
somewhere."""

from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil

from conftest import ROOT, evo

from evo.bench.loopback import Reply
from evo.evaluate.sandbox import evaluate
from evo.target import load_target

FILE_BLOCK = re.compile(r"`targets/sqrt/(\S+)`[^`]*?```(?:toml|python)\n(.*?)```", re.S)


def test_the_worked_example_runs_as_documented(tmp_path):
    text = (ROOT / "targets" / "README.md").read_text()
    files = dict(FILE_BLOCK.findall(text))
    assert sorted(files) == ["approx.py", "score.py", "target.toml"]
    folder = tmp_path / "sqrt"
    folder.mkdir()
    for name, source in files.items():
        (folder / name).write_text(source)
    target = load_target(folder)
    seed = evaluate(target, device="cpu")
    assert seed.status == "ok" and seed.metric > 0 and seed.details["max_rel_error"] < 1e-12

    wrong = evaluate(target, {"approx.py": "def approx_sqrt(x):\n    return 1\n"}, device="cpu")
    assert (wrong.status, wrong.reason) == ("invalid", "approx_sqrt must return floats")


README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
# A line that a reader would type, wherever it is shown: commands belong in ```sh blocks, where
# this test finds them; output and file listings go in ```text blocks.
LOOKS_TYPED = re.compile(r"^(\$ |python |make |export )")

# README commands this test does not run, and why. Any other command the README shows is run
# below, so a new one cannot go untested: run it there, or add it here with its reason.
NOT_RUN = {
    "make run": "the main job, about 10 minutes of the gpt target; the README's `evo run` of "
    "that target is run here, capped",
    "make test": "it runs this suite",
}

# What the test puts in place of what only a reader has. Nothing else in a command changes.
PLACEHOLDERS = {
    "runs/<id>": "a copy of conftest's real_run, a finished offline run of the quad fixture",
    "../winning": "a new folder in the test's temporary folder, not beside the checkout",
    "sk-ant-...": "a made-up key: every model request goes to conftest's loopback model_server",
}
# Appended to an `evo run` that starts a search, which as shown runs for hours: one evaluation
# of the seed program, then one of a child the operator proposed, at 1 s budgets of the gpt
# target. Its run folder goes to the test's temporary folder, not to runs/.
CAPS = ["--max-evals", "2", "--noise-repeats", "1", "--budget", "1"]


def readme_commands() -> list[list[str]]:
    """The README's commands as argument lists, trailing comments dropped, in order."""
    commands = []
    for language, body in FENCE.findall(README.read_text()):
        lines = [line for line in body.splitlines() if line.strip()]
        if language != "sh":
            typed = [line for line in lines if LOOKS_TYPED.match(line)]
            assert not typed, f"README shows commands outside a ```sh block: {typed}"
            continue
        commands += [shlex.split(line.removeprefix("$ "), comments=True) for line in lines]
    return commands


def test_the_readme_starts_with_make_run_and_make_test():
    first = [" ".join(argv) for argv in readme_commands()[:2]]
    assert first == ["make run", "make test"]
    subcommands = {argv[3] for argv in readme_commands() if argv[:3] == ["python", "-m", "evo"]}
    assert {"run", "lineage", "show", "report", "confirm", "export", "status"} <= subcommands


def gpt_edits():
    """A model that proposes a new, valid edit of the gpt target's train.py every time."""
    momenta = itertools.count(90)
    return lambda request: Reply(
        f"HYPOTHESIS: less momentum reacts faster\nREPLACE DEFINITION MOMENTUM IN train.py\n"
        f"```python\nMOMENTUM = 0.{next(momenta)}\n```\n"
    )


def test_every_command_the_readme_shows_runs(real_run, model_server, monkeypatch, tmp_path):
    run = tmp_path / "copy" / real_run.name
    shutil.copytree(real_run, run)
    values = {
        "runs/<id>": str(run),
        "../winning": str(tmp_path / "winning"),
        "sk-ant-...": "sk-ant-test",
    }
    assert values.keys() == PLACEHOLDERS.keys()
    # No key of the person running the tests, and no request beyond loopback.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_"))}
    env["ANTHROPIC_BASE_URL"] = model_server.url
    model_server.reset()
    monkeypatch.setattr(model_server, "default", gpt_edits())

    shown = readme_commands()
    lines = [shlex.join(argv) for argv in shown]
    assert set(NOT_RUN) <= set(lines), "NOT_RUN lists a command the README no longer shows"
    for argv, line in zip(shown, lines, strict=True):
        if line in NOT_RUN:
            continue
        args = []
        for arg in argv:
            for placeholder, value in values.items():
                arg = arg.replace(placeholder, value)
            assert "<" not in arg and "..." not in arg, f"{line}: a placeholder with no value"
            args.append(arg)
        if args[0] == "export":
            name, _, value = args[1].partition("=")
            env[name] = value
            continue
        assert args[:3] == ["python", "-m", "evo"], (
            f"README shows `{line}`, which this test does not run: run it here, or add it to "
            "NOT_RUN with the reason"
        )
        args = args[3:]
        search = args[0] == "run" and "--resume" not in args
        if search:
            args += [*CAPS, "--out", str(tmp_path / "runs")]
        asked = len(model_server.requests)
        done = evo(*args, env=env)
        assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        if search and "anthropic" in args:
            assert len(model_server.requests) > asked, f"{line}: no proposal was asked of Claude"
            assert {r.path for r in model_server.requests[asked:]} == {"/v1/messages"}


LINK = re.compile(r"\]\(([^)\s]+)\)")


def headings(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings."""
    anchors: set[str] = set()
    for title in re.findall(r"^#+ (.+)$", FENCE.sub("", text), re.M):
        anchor = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        unique = anchor
        for n in itertools.count(1):
            if unique not in anchors:
                break
            unique = f"{anchor}-{n}"
        anchors.add(unique)
    return anchors


def test_every_relative_link_of_the_readme_and_docs_resolves():
    broken = []
    for page in PAGES:
        for link in LINK.findall(FENCE.sub("", page.read_text())):
            if re.match(r"[a-z]+:", link):
                continue
            path, _, anchor = link.partition("#")
            target = (page.parent / path).resolve() if path else page
            if not target.exists():
                broken.append(f"{page.relative_to(ROOT)}: {link}")
            elif anchor and target.suffix == ".md" and anchor not in headings(target.read_text()):
                broken.append(f"{page.relative_to(ROOT)}: {link} (no such heading)")
    assert not broken, "\n".join(broken)
    linked = {(ROOT / link.partition("#")[0]) for link in LINK.findall(README.read_text())}
    assert set(PAGES[1:]) <= linked, "a page of docs/ that the README does not link to"
