"""Outcome counting shared by every category, and the summary table."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Every case ends in exactly one of these.
OUTCOMES = ("handled", "crash", "hang", "traceback", "lost")


@dataclass
class Failure:
    outcome: str  # one of OUTCOMES except "handled"
    case: str  # what was tried, enough to reproduce it (seed, index, mutation)
    detail: str


@dataclass
class Tally:
    """Counts per outcome for one category; ``failures`` keeps the first few of each kind.

    handled: the contract held (a typed reply or a clean run). crash: the engine died or exited
    with a code the protocol does not give for this input. hang: no answer within the time
    bound. traceback: a Python traceback on stderr or an internal error (-32603) reply. lost: a
    request without exactly one reply, bytes on stdout that are not protocol, a bad line trained
    silently, or a model directory left unloadable or with leftovers.
    """

    category: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    keep: int = 20
    skipped: str | None = None  # why nothing could be tried here

    @property
    def tried(self) -> int:
        return sum(self.counts.values())

    def add(self, outcome: str, case: str = "", detail: str = "") -> None:
        self.counts[outcome] += 1
        if outcome != "handled" and len(self.failures) < self.keep:
            self.failures.append(Failure(outcome, case, detail[:2000]))

    def merge(self, other: Tally) -> None:
        for key, value in other.counts.items():
            self.counts[key] += value
        self.failures.extend(other.failures[: max(0, self.keep - len(self.failures))])
        self.seconds += other.seconds

    def report(self) -> str:
        """The failures, one block each, for an assertion message."""
        lines = [f"{self.category}: {self.counts}"]
        for f in self.failures:
            lines.append(f"- {f.outcome}: {f.case}\n    {f.detail}")
        return "\n".join(lines)


def table(tallies: list[Tally]) -> str:
    """The summary table in Markdown."""
    head = "| category | tried | handled | crash | hang | traceback | lost | seconds |"
    rows = [head, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for t in tallies:
        c = t.counts
        if t.skipped:
            rows.append(f"| {t.category} | skipped: {t.skipped} | | | | | | |")
            continue
        rows.append(
            f"| {t.category} | {t.tried} | {c['handled']} | {c['crash']} | {c['hang']} | "
            f"{c['traceback']} | {c['lost']} | {t.seconds:.0f} |"
        )
    return "\n".join(rows)
