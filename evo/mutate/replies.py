"""Reading a model's reply: its hypothesis and its edits, as real models write them.

The prompt asks for one format (REPLY_FORMAT); models drift from it. What is read anyway:
- the hypothesis label in any case and with markdown decoration (`Hypothesis:`,
  `**Hypothesis:**`, `## Hypothesis` with the text on the next line); without one, the first
  sentence of the prose before the first edit, or else a one-line summary of the edit;
- SEARCH/REPLACE markers with 5 to 9 chevrons or equals signs, an optional `FILE:` line before
  them (any case, decorated), inside or outside a code fence;
- REPLACE DEFINITION and REWRITE in any case and decorated, with any fence language tag;
- a reply whose only edit is one fenced block holding a whole file that parses, when the target
  has one mutable file: a rewrite of it ("whole": it defines every top-level name the file does).
What is still refused, each with a reason the model can act on: no edit in any of these forms,
a block that does not name its file when there are several, a lone fenced fragment.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping

from evo.mutate.edits import Edit, EditError, ReplaceDefinition, Rewrite, SearchReplace, describe

REPLY_FORMAT = """Reply with one line `HYPOTHESIS: <what you change and why it should help>`,
then the edit in one of these forms (several SEARCH/REPLACE blocks may follow each other):

FILE: <file>
<<<<<<< SEARCH
<lines copied exactly from the file, enough to be unique>
=======
<the lines that replace them>
>>>>>>> REPLACE

REPLACE DEFINITION <top-level function, class or variable name> IN <file>
```python
<the whole new definition>
```

REWRITE <file>
```python
<the whole new file>
```"""

_DECORATION = r"[\s#>*_`]*"  # markdown around a keyword: headings, bold, quotes, code
_HYPOTHESIS = re.compile(
    rf"^{_DECORATION}hypothesis{_DECORATION}(?:[:\-\u2013\u2014]{_DECORATION})?(?P<text>.*?)\s*$",
    re.M | re.I,
)
_FILE_LINE = rf"(?:^{_DECORATION}file{_DECORATION}:{_DECORATION}(?P<file>[^\s*`]+)[\s*`]*\n)?"
_SEARCH_BLOCK = re.compile(
    rf"{_FILE_LINE}^<{{5,9}} ?SEARCH[ \t]*\n(?P<search>.*?)^={{5,9}}[ \t]*\n"
    r"(?P<replace>.*?)^>{5,9} ?REPLACE[ \t]*$",
    re.M | re.S | re.I,
)
_FENCE = r"^```[\w+-]*[ \t]*\n(?P<code>.*?)^```"
_DEFINITION = re.compile(
    rf"^{_DECORATION}REPLACE DEFINITION\s+(?P<name>\w+)(?:\s+IN\s+(?P<file>[^\s*`]+))?"
    rf"{_DECORATION}\n(?:\s*\n)*{_FENCE}",
    re.M | re.S | re.I,
)
_REWRITE = re.compile(
    rf"^{_DECORATION}REWRITE(?:\s+(?P<file>[^\s*`]+))?{_DECORATION}\n(?:\s*\n)*{_FENCE}",
    re.M | re.S | re.I,
)
_ANY_FENCE = re.compile(_FENCE, re.M | re.S)
_SENTENCE = re.compile(r"(.+?[.!?])(?:\s|$)", re.S)


def parse_reply(text: str, parent: Mapping[str, str]) -> tuple[str, list[Edit]]:
    """The hypothesis and edits of a reply to a request for a child of `parent` (mutable file ->
    source); EditError saying what to fix when it holds no edit."""
    text = text.replace("\r\n", "\n")
    files = list(parent)
    found: list[tuple[int, Edit]] = []
    for m in _SEARCH_BLOCK.finditer(text):
        found.append((m.start(), SearchReplace(_file(m["file"], files), m["search"], m["replace"])))
    for m in _DEFINITION.finditer(text):
        found.append((m.start(), ReplaceDefinition(_file(m["file"], files), m["name"], m["code"])))
    for m in _REWRITE.finditer(text):
        found.append((m.start(), Rewrite(_file(m["file"], files), m["code"])))
    if not found:
        found = [_whole_file(text, parent)]
    first = min(start for start, _ in found)
    edits = [edit for _, edit in sorted(found, key=lambda pair: pair[0])]
    return _hypothesis(text, first) or describe(edits[0]), edits


def _hypothesis(text: str, first_edit: int) -> str:
    """The labelled hypothesis (its text, or the next line's under a heading), or else the first
    sentence before the first edit."""
    for m in _HYPOTHESIS.finditer(text):
        if m["text"]:
            return m["text"]
        following = text[m.end() :].lstrip("\n").split("\n", 1)[0].strip(" *_>#")
        if following and not following.startswith(("```", "<<<")):
            return following
    prose = [
        line.strip(" *_>#")
        for line in text[:first_edit].splitlines()
        if line.strip(" *_>#") and not line.lstrip().startswith("```")
    ]
    if not prose:
        return ""
    sentence = _SENTENCE.match(" ".join(prose))
    return (sentence.group(1) if sentence else " ".join(prose))[:300]


def _whole_file(text: str, parent: Mapping[str, str]) -> tuple[int, Edit]:
    blocks = list(_ANY_FENCE.finditer(text))
    if len(parent) != 1 or len(blocks) != 1:
        raise EditError(
            "the reply has no edit in a known form (SEARCH/REPLACE, REPLACE DEFINITION or "
            "REWRITE); use one of them exactly"
        )
    [(file, source)] = parent.items()
    code = blocks[0]["code"]
    try:
        defined = _top_level_names(code)
    except SyntaxError as e:
        raise EditError(
            f"the reply's only code block does not parse (line {e.lineno}: {e.msg}) and is in "
            "no known edit form; use SEARCH/REPLACE, REPLACE DEFINITION or REWRITE"
        ) from None
    missing = sorted(_top_level_names(source) - defined)
    if missing:
        raise EditError(
            f"the reply's only code block is not the whole of {file} (it does not define "
            f"{', '.join(missing[:5])}); to change part of it, use SEARCH/REPLACE or "
            "REPLACE DEFINITION"
        )
    return blocks[0].start(), Rewrite(file, code)


def _top_level_names(source: str) -> set[str]:
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def _file(named: str | None, files: list[str]) -> str:
    if named:
        return named
    if len(files) == 1:
        return files[0]
    raise EditError(f"an edit does not say its file; name one of: {', '.join(files)}")
