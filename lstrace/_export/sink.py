"""Where reviews become rows: one task per run id, and the counts the summary reports."""

from __future__ import annotations

from collections.abc import Sequence

from lstrace._export.annotations import Review, Tally
from lstrace._export.formats import Writer


class Rows:
    """Feeds a writer task by task; keeps the export's tally.

    With ``dedupe``, a task whose run id was already written is left out (and
    counted): a call delivered twice, by a retried import, exports once.
    """

    def __init__(self, writer: Writer, *, dedupe: bool) -> None:
        self.writer = writer
        self.dedupe = dedupe
        self.tally = Tally()
        self.rows = 0
        self._seen: set[str] = set()  # run ids written: the only thing that grows with the project

    def add(self, run_id: str, found: Sequence[Review], tally: Tally) -> None:
        """Write the rows of one task's reviews (``tally``: what reading the task counted)."""
        self.tally.add(tally)
        if self.dedupe and run_id and run_id in self._seen:
            self.tally.dropped["duplicate_run_id"] += 1
            return
        if found and run_id:
            self._seen.add(run_id)
        for review in found:
            self.tally.used += 1
            self.rows += self.writer.write(review)

    def finish(self) -> int:
        """Write what needs every review first; returns the rows written in all."""
        self.rows += self.writer.finish()
        return self.rows
