"""What an incremental export (``--since last``) remembers between runs, per output.

The state is a small SQLite file next to the output (``.NAME.lstrace-state``,
or wherever ``--state`` says). It holds, per annotated task, the reviews the
export made of it and what it counted, so the next run reads from Label Studio
only the tasks changed since the last one (by the server's ``updated_at``)
and rebuilds the whole output from the state: the dataset is the same as a
full export's. It also holds the read in progress: an interrupted run is
resumed from the last task it stored, and the watermark only moves once a
read is complete.

Robustness: each chunk of tasks is stored in one transaction (the journal
makes a crash mid-write harmless); the file is locked for the run, so two
exports cannot interleave; a state written for another server, project,
label config or filter set is not used (the run reads everything afresh and
says why).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstrace._errors import BadRequest
from lstrace._export.annotations import PairSides, Review, Tally

VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL,
                                  reviews TEXT NOT NULL, tally TEXT NOT NULL);
"""


def default_path(output: Path) -> Path:
    """Where the state of ``output`` lives: a hidden file beside it (beside a symlink's target)."""
    real = Path(output).resolve()
    return real.with_name(f".{real.name}.lstrace-state")


@dataclass(frozen=True)
class Identity:
    """What the stored reviews depend on; another identity means they cannot be reused."""

    server: str
    project_id: int
    label_config: str  # the parsed config, canonical JSON
    filters: str  # policy, include_skipped, min_rating

    def differences(self, other: Identity) -> list[str]:
        """Why ``other`` cannot reuse this identity's reviews, in words."""
        names = {
            "server": "another server",
            "project_id": "another project",
            "label_config": "the project's label config changed",
            "filters": "other filters (--annotator-policy, --include-skipped, --min-rating)",
        }
        return [text for name, text in names.items() if getattr(self, name) != getattr(other, name)]


def identity(
    server: str, project_id: int, parsed_config: Mapping[str, Any], filters: Mapping[str, Any]
) -> Identity:
    return Identity(
        server=server,
        project_id=project_id,
        label_config=_digest(parsed_config),
        filters=json.dumps(dict(filters), sort_keys=True),
    )


@dataclass(frozen=True)
class Read:
    """The read a run must do: tasks updated at or after ``since`` (None: every task) with
    an id above ``after_id``; once complete, ``since`` becomes ``mark``."""

    since: str | None  # the server's time, as the Data Manager filters take it
    mark: str  # the watermark this read moves to once it is complete
    after_id: int = 0
    resumed: bool = False


class ExportState:
    """One output's state file, open and locked for one run."""

    def __init__(self, path: Path) -> None:
        """Open (creating) the state at ``path``. Raises :class:`BadRequest` when the file
        cannot be written, or when another export holds it."""
        self.path = path
        try:
            self._db = sqlite3.connect(path, timeout=0.5, isolation_level=None)
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("BEGIN EXCLUSIVE")  # the lock, taken now, is held until close()
            self._db.execute("COMMIT")
            self._db.executescript(_SCHEMA)
        except sqlite3.OperationalError as exc:
            self._fail(exc)
        except sqlite3.DatabaseError as exc:
            raise BadRequest(
                f"{path} is not an lstrace export state ({exc}); delete it or pass another --state."
            ) from None

    def _fail(self, exc: sqlite3.Error) -> None:
        if "locked" in str(exc):
            raise BadRequest(
                f"another lstrace export is using {self.path}; wait for it to finish."
            ) from None
        raise BadRequest(f"cannot write the export state {self.path}: {exc}.") from None

    def close(self) -> None:
        self._db.close()

    # -- what is stored -------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def adopt(self, wanted: Identity) -> list[str]:
        """Use the stored reviews if they were made for ``wanted``; otherwise forget them.
        Returns why they were forgotten (empty when kept or when there were none)."""
        stored = self._meta("identity")
        version = self._meta("version")
        reasons: list[str] = []
        if stored is not None:
            if version != str(VERSION):
                reasons = [f"it was written by another lstrace (state version {version})"]
            else:
                try:
                    reasons = Identity(**json.loads(stored)).differences(wanted)
                except (TypeError, ValueError):
                    reasons = ["it is unreadable"]
        if stored is None or reasons:
            with self._tx() as db:
                db.execute("DELETE FROM tasks")
                db.execute("DELETE FROM meta")
                self._set(db, "version", str(VERSION))
                self._set(db, "identity", json.dumps(dataclasses.asdict(wanted)))
        return reasons

    def next_read(self, now: str) -> Read:
        """What to read this run: the interrupted read, or everything updated since the last
        complete one (``now``, the server's time, becomes the next watermark)."""
        mark = self._meta("read_mark")
        if mark is not None:  # a read was interrupted: go on where it stopped
            return Read(
                self._meta("read_since"), mark, int(self._meta("read_after") or 0), resumed=True
            )
        read = Read(self._meta("watermark"), now)
        with self._tx() as db:
            if read.since is not None:
                self._set(db, "read_since", read.since)
            self._set(db, "read_mark", read.mark)
            self._set(db, "read_after", "0")
        return read

    def store(
        self, tasks: Iterable[tuple[int, str, Sequence[Review], Tally]], *, after_id: int
    ) -> None:
        """Replace what is stored of some tasks (id, run id, reviews, tally), in one
        transaction; the read has reached ``after_id`` (0: it cannot resume by id)."""
        rows = [
            (task_id, run_id, _dump_reviews(found), _dump_tally(tally))
            for task_id, run_id, found, tally in tasks
        ]
        with self._tx() as db:
            db.executemany("INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?)", rows)
            self._set(db, "read_after", str(after_id))

    def forget(self, task_ids: Iterable[int]) -> int:
        """Drop tasks that no longer have annotations (or no longer exist)."""
        with self._tx() as db:
            before = db.total_changes
            db.executemany("DELETE FROM tasks WHERE id = ?", [(i,) for i in task_ids])
            return db.total_changes - before

    def task_ids(self) -> set[int]:
        return {int(i) for (i,) in self._db.execute("SELECT id FROM tasks")}

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0])

    def complete(self, read: Read) -> None:
        """The read is done: the next run reads what changed since its mark."""
        with self._tx() as db:
            self._set(db, "watermark", read.mark)
            db.execute("DELETE FROM meta WHERE key IN ('read_since', 'read_mark', 'read_after')")

    def watermark(self) -> str | None:
        return self._meta("watermark")

    def stored(self) -> Iterator[tuple[int, str, list[Review], Tally]]:
        """Every stored task, in id order: id, run id, reviews, what reading it counted."""
        rows = self._db.execute("SELECT id, run_id, reviews, tally FROM tasks ORDER BY id")
        for task_id, run_id, reviews, tally in rows:
            yield int(task_id), str(run_id), _load_reviews(reviews), _load_tally(tally)

    # -- plumbing ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            self._fail(exc)
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @staticmethod
    def _set(db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _dump_reviews(reviews: Sequence[Review]) -> str:
    return json.dumps([dataclasses.asdict(r) for r in reviews], ensure_ascii=False)


def _load_reviews(text: str) -> list[Review]:
    found = []
    for fields in json.loads(text):
        sides = fields.pop("sides", None)
        found.append(Review(**fields, sides=PairSides(**sides) if sides else None))
    return found


def _dump_tally(tally: Tally) -> str:
    return json.dumps(
        {
            "tasks": tally.tasks,
            "annotations": tally.annotations,
            "used": tally.used,
            "dropped": dict(tally.dropped),
            "ignored_types": dict(tally.ignored_types),
        }
    )


def _load_tally(text: str) -> Tally:
    fields = json.loads(text)
    return Tally(
        tasks=fields["tasks"],
        annotations=fields["annotations"],
        used=fields["used"],
        dropped=Counter(fields["dropped"]),
        ignored_types=Counter(fields["ignored_types"]),
    )
