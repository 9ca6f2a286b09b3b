"""The fault suite's figures: what every scenario sent, doubled, lost and left unknown, recorded
as it ends and printed at the end of the test session (see conftest.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class Figures:
    """One scenario's count of what happened to the messages it asked for."""

    scenario: str
    sent: int  # rows recorded sent (and found at the receiver)
    duplicates: int  # a person holding two messages where one was due
    lost: int  # due work that ended neither done, recorded failed, nor visibly due
    unknown: int  # sends that died mid-way on a channel that does not deduplicate
    failed: int = 0  # recorded failures, with their reason
    repeats_absorbed: int = 0  # sent again to a receiver that dropped the key's second copy
    note: str = ""


class FiguresReport:
    """Fed by each scenario; printed at the end of the session (see conftest.py)."""

    def __init__(self) -> None:
        self.rows: list[Figures] = []
        self.lock = threading.Lock()

    def record(self, figures: Figures) -> Figures:
        with self.lock:
            self.rows.append(figures)
        return figures

    def lines(self) -> list[str]:
        header = ("scenario", "sent", "dupl.", "lost", "unknown", "failed", "re-sent*", "note")
        rows = [
            (
                f.scenario,
                str(f.sent),
                str(f.duplicates),
                str(f.lost),
                str(f.unknown),
                str(f.failed),
                str(f.repeats_absorbed),
                f.note,
            )
            for f in sorted(self.rows, key=lambda row: row.scenario)
        ]
        total = (
            "total",
            *(
                str(sum(getattr(f, name) for f in self.rows))
                for name in ("sent", "duplicates", "lost", "unknown", "failed", "repeats_absorbed")
            ),
            "",
        )
        table = [header, *rows, total]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        out = [
            "  ".join(
                cell.ljust(widths[i]) if i in (0, 7) else cell.rjust(widths[i])
                for i, cell in enumerate(row)
            ).rstrip()
            for row in table
        ]
        out.append(
            "* re-sent: sends repeated after a crash to a receiver that deduplicates by key "
            "(dropped there, not duplicates)"
        )
        return out


FIGURES = FiguresReport()
