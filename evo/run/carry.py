"""Gains carried over to the champion: what an island's greedy steps would lose when several run
at once.

With E evaluators, the E children of a greedy island in flight are all children of its champion
as it was when they were chosen; when one wins, the others' changes are on a base that is no
longer the best, and one greedy step is kept where two independent ones were found. Two ways a
run keeps them (`carry_gains`, on by default), both by a three-way merge of lines
(evo.search.merge), without a model:

- rebase: a child of a replaced champion, not yet evaluated, is moved onto the new champion (its
  change merged into it) just before its first evaluation, so that it is judged as the step from
  the best program that it was meant to be;
- carry: a program that beat its own parent by the acceptance threshold, but is not its island's
  champion (a sibling won meanwhile: the champion it replaced, or one judged after the champion
  moved on), has its change merged into the champion as a new candidate, evaluated next: a
  recombination of the two (its mate_id) by the operator "merge".

Only children whose parent was the island's champion when it was chosen take part (the greedy
steps; a tournament's parents are left to explore), and only merges without a conflict that make
a valid program new to the run. What it does not keep: the steps of champions crowned before a
resume or more than HELD champions ago (what a carry needs is held in memory), and changes of
the same lines as the champion's own, which conflict.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace

from evo.mutate.proposal import Validator, program_hash
from evo.run.state import RunState
from evo.search.candidate import Candidate, Child
from evo.search.island import Member, Selection
from evo.search.merge import merge
from evo.status import Status
from evo.target import Target

HELD = 256  # champions kept in memory for rebases and carries


@dataclass(frozen=True)
class Crowned:
    """A program that was an island's champion, with what a carry needs to know of its step."""

    member: Member
    parent_id: int | None
    from_champion: bool


class Carry:
    def __init__(self, target: Target, state: RunState, selection: Selection):
        self.validator = Validator(target)  # parsing, rules and regions; the run checks `seen`
        self.state, self.selection = state, selection
        self.crowned: OrderedDict[int, Crowned] = OrderedDict(
            (m.id, Crowned(m, None, False)) for m in state.champions.values()
        )

    def rebase(self, candidate: Candidate) -> None:
        """Move a child of a replaced champion onto its island's champion, before its first
        evaluation; it stays as it is where the merge fails."""
        child, champion = candidate.child, self.state.champions[candidate.island]
        parent = self.crowned.get(child.parent_id)
        if not child.from_champion or parent is None or parent.member.id == champion.id:
            return
        sources = self._merged(parent.member, champion, candidate.sources)
        if sources is not None:
            candidate.child = replace(
                child,
                parent_id=champion.id,
                generation=champion.generation + 1,
                edit=f"{child.edit} (rebased from #{parent.member.id} onto #{champion.id})",
                sources=sources,
            )

    def settled(self, candidate: Candidate, fate: Status, displaced: Member) -> Candidate | None:
        """After `candidate`'s fate (the island's champion before it: `displaced`): a candidate
        that carries a proven change over to the champion, if one is due."""
        child = candidate.child
        if fate == Status.ACCEPTED:
            # a founder or a migrant was crowned elsewhere: its children may still be rebased
            self.crowned.setdefault(displaced.id, Crowned(displaced, None, False))
            self._crown(candidate)
            if child.parent_id == displaced.id:
                return None  # it built on the champion it replaced: nothing was lost
            before = self.crowned[displaced.id]  # the replaced one's own step, if it was one
            if not before.from_champion:
                return None
            return self._carried(displaced, before.parent_id, candidate.island)
        parent = self.crowned.get(child.parent_id)
        if fate not in (Status.KEPT, Status.REJECTED) or not child.from_champion or not parent:
            return None
        champion = self.state.champions[candidate.island]
        gain, shared = self.selection.gain(candidate.as_member(), parent.member)
        if parent.member.id == champion.id or not self.selection.clear(
            gain, shared, self.state.sigma
        ):
            return None
        return self._carried(candidate.as_member(), child.parent_id, candidate.island)

    def _carried(self, proven: Member, base_id: int | None, island: int) -> Candidate | None:
        """A new candidate: the island's champion with the change `proven` made to its parent."""
        base, champion = self.crowned.get(base_id), self.state.champions[island]
        sources = base and self._merged(base.member, champion, proven.sources)
        if sources is None:
            return None
        child = Child(
            island=island,
            parent_id=champion.id,
            generation=champion.generation + 1,
            operator="merge",
            model=None,
            hypothesis=f"#{proven.id}'s change beat its parent; carried over: {proven.hypothesis}",
            edit=f"#{proven.id}'s change merged into #{champion.id}",
            sources=sources,
            mate_id=proven.id,
            from_champion=True,
        )
        candidate = Candidate(self.state.next_id, child)
        self.state.next_id += 1
        return candidate

    def _merged(self, base: Member, champion: Member, changed: dict[str, str]) -> dict | None:
        """The champion with the change from `base` to `changed`, where that is a valid program
        new to the run (then counted as seen)."""
        sources = merge(base.sources, champion.sources, changed)
        if sources is None or self.validator.reasons(champion.sources, sources):
            return None
        digest = program_hash(sources)
        if digest in self.state.seen:
            return None
        self.state.seen.add(digest)
        return sources

    def _crown(self, candidate: Candidate) -> None:
        child = candidate.child
        self.crowned[candidate.id] = Crowned(
            candidate.as_member(), child.parent_id, child.from_champion
        )
        while len(self.crowned) > HELD:
            self.crowned.popitem(last=False)
