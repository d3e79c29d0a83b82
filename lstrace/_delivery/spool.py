"""The durable spool: a SQLite file (WAL mode, mode 0600) holding every task not yet confirmed.

A task is written here before any attempt to send it, and deleted only after
Label Studio confirmed the import. Each row is claimed by one process (its
``owner`` token); rows of a process that died are taken over by the next one.
``maybe_sent`` marks rows whose last import attempt may have reached the
server, so the sender checks for them there before sending again.

The calls one spooler pass stores for one destination share one row (``chunks``,
their text in ``chunk_bodies``): SQLite's work per row is then paid once per chunk.
Each call still has an id of its own (see ``MEMBER``), is marked, delivered and set
aside on its own; the chunk row records which of its calls are gone.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstrace._errors import SpoolFull
from lstrace._json import dumps, loads
from lstrace._options import Destination

logger = logging.getLogger("lstrace")

HEARTBEAT_STALE_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS destinations (key TEXT PRIMARY KEY, spec TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dest TEXT NOT NULL,
    run_id TEXT NOT NULL,
    body TEXT NOT NULL,
    created REAL NOT NULL,
    owner TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    maybe_sent INTEGER NOT NULL DEFAULT 0,
    dead TEXT,
    task BLOB  -- the import body, built at spooling for the destination's own config
);
CREATE UNIQUE INDEX IF NOT EXISTS tasks_dest_run ON tasks (dest, run_id);
CREATE INDEX IF NOT EXISTS tasks_owner ON tasks (owner, dest, id);
CREATE TABLE IF NOT EXISTS owners (token TEXT PRIMARY KEY, pid INTEGER NOT NULL,
                                   host TEXT NOT NULL, heartbeat REAL NOT NULL);
-- Steps of traces whose root has not ended yet (trace mode): a trace's steps become one
-- task row when its root ends, or when the process that ran it is gone.
CREATE TABLE IF NOT EXISTS trace_steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dest TEXT NOT NULL,
    root TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    created REAL NOT NULL,
    owner TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS trace_steps_root ON trace_steps (dest, root, seq);
-- Batches sent again after an ambiguous attempt (the first may still land): their run ids
-- are checked for duplicates later (lstrace/_delivery/repair.py). ``batch``: JSON with a
-- layout version, {"v": 1, "project": id, "run_ids": [...]}.
CREATE TABLE IF NOT EXISTS rechecks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dest TEXT NOT NULL,
    batch TEXT NOT NULL,
    created REAL NOT NULL,
    due REAL NOT NULL,
    checks INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    owner TEXT
);
-- Calls spooled together for one destination (one spooler pass): one row for them all,
-- so SQLite's work per row (insert, take, attempt mark, delete) is done once per chunk,
-- not once per call. ``chunk_bodies.body``: the calls' JSON texts joined by U+001E, which
-- JSON text never holds (control characters are escaped), in a table of its own so that
-- marking a chunk never rewrites its calls' text; ``gone``: the indexes of the calls
-- already delivered, comma separated (a call set aside moves to ``tasks``, dead);
-- ``live``: how many calls still wait; ``sent``: the indexes of the waiting calls whose
-- last attempt may have reached the server (``tasks.maybe_sent`` for each call). Older
-- lstrace versions never read this table.
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dest TEXT NOT NULL,
    owner TEXT,
    created REAL NOT NULL,
    live INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    gone TEXT NOT NULL DEFAULT '',
    sent TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS chunks_owner ON chunks (owner, dest, id);
CREATE TABLE IF NOT EXISTS chunk_bodies (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
"""

RECHECK_VERSION = 1  # the layout of rechecks.batch; raise it when a field changes


def peek(path: Path) -> tuple[list[tuple[Destination, int]], dict[str, int]]:
    """What waits in the spool file at ``path`` (every process's rows), per destination in
    delivery order, and how many tasks were set aside (dead), by reason. Read-only: never
    creates the file, claims rows or registers an owner. Raises ``sqlite3.Error`` for an
    unreadable file.
    """
    db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        dead = db.execute(
            "SELECT dead, COUNT(*) FROM tasks WHERE dead IS NOT NULL GROUP BY dead ORDER BY dead"
        ).fetchall()
        rows = db.execute(
            "SELECT d.spec, COUNT(*) FROM tasks t JOIN destinations d ON d.key = t.dest"
            " WHERE t.dead IS NULL GROUP BY t.dest ORDER BY MIN(t.id)"
        ).fetchall()
        try:  # calls spooled together (a file an older lstrace wrote has no such table)
            chunked = db.execute(
                "SELECT d.spec, SUM(c.live) FROM chunks c JOIN destinations d ON d.key = c.dest"
                " GROUP BY c.dest ORDER BY MIN(c.id)"
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            chunked = []
    finally:
        db.close()
    counts: dict[str, int] = {}  # by destination, in delivery order
    for spec, n in rows + chunked:
        counts[spec] = counts.get(spec, 0) + int(n)
    waiting = [(Destination.from_spec(json.loads(spec)), n) for spec, n in counts.items()]
    return waiting, {str(why): int(n) for why, n in dead}


@dataclass(frozen=True)
class SetAside:
    """A spooled task the sender set aside (``dead``): never delivered, kept until it is
    retried or discarded (``lstrace set-aside``)."""

    id: int
    destination: Destination
    run_id: str
    reason: str  # "unpaired", "build:<error>", "rejected:<status>"
    captured: float  # when the call was spooled
    content: dict[str, Any]

    def why(self) -> str:
        return describe_reason(self.reason)


def describe_reason(reason: str) -> str:
    """Why a task was set aside, in words that say whether Label Studio ever saw it."""
    kind, _, detail = reason.partition(":")
    if kind == "unpaired":
        return "a pairwise call that found no partner (never sent)"
    if kind == "build":
        return f"could not be made into a task ({detail or 'error'}; never sent)"
    if kind == "rejected":
        return f"refused by Label Studio ({detail or 'bad request'})"
    return reason


def set_aside(path: Path) -> list[SetAside]:
    """Every set-aside task of the spool at ``path``, oldest first. Read-only, like :func:`peek`."""
    db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT t.id, d.spec, t.run_id, t.dead, t.created, t.body FROM tasks t"
            " JOIN destinations d ON d.key = t.dest WHERE t.dead IS NOT NULL ORDER BY t.id"
        ).fetchall()
    finally:
        db.close()
    return [
        SetAside(i, Destination.from_spec(json.loads(spec)), run, why, created, json.loads(body))
        for i, spec, run, why, created, body in rows
    ]


def revive(path: Path, ids: Iterable[int]) -> int:
    """Put set-aside tasks back in line: the next sender (any process's) claims and sends
    them. A pairwise call that found no partner goes alone, its other side left empty.
    Returns how many were revived."""
    wanted = [(i,) for i in ids]
    with _writing(path) as db:
        alone = []
        for (i,) in wanted:
            for (body,) in db.execute(
                "SELECT body FROM tasks WHERE id = ? AND dead = 'unpaired'", (i,)
            ):
                alone.append((json.dumps({**json.loads(body), "pair_group": None}), i))
        db.executemany("UPDATE tasks SET body = ? WHERE id = ?", alone)
        before = db.total_changes
        db.executemany(
            "UPDATE tasks SET dead = NULL, owner = NULL, attempts = 0"
            " WHERE id = ? AND dead IS NOT NULL",
            wanted,
        )
        return db.total_changes - before


def discard(path: Path, ids: Iterable[int]) -> int:
    """Delete set-aside tasks for good; returns how many were deleted."""
    with _writing(path) as db:
        before = db.total_changes
        db.executemany("DELETE FROM tasks WHERE id = ? AND dead IS NOT NULL", [(i,) for i in ids])
        return db.total_changes - before


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[sqlite3.Connection]:
    """One transaction on an existing spool file, next to any process using it."""
    db = sqlite3.connect(path.resolve().as_uri() + "?mode=rw", uri=True, timeout=30)
    try:
        with _guard:
            db.execute("BEGIN IMMEDIATE")
            with _rolled_back_on_error(db):
                yield db
    finally:
        db.close()


@contextlib.contextmanager
def _rolled_back_on_error(db: sqlite3.Connection) -> Iterator[None]:
    """Commit the transaction ``db`` is in when the block ends, else roll it back; a COMMIT
    that fails (a full disk) is rolled back too, or the connection would stay inside the
    transaction and every later BEGIN on it fail. The block's error is the one raised."""
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # SQLite may have rolled back already (some errors do)
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise


def default_path() -> Path:
    """The per-user spool path (``LSTRACE_SPOOL_PATH`` overrides it)."""
    env = os.environ.get("LSTRACE_SPOOL_PATH")
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "lstrace" / "spool.sqlite3"


HELD_MAX_BYTES = 64_000_000  # rows kept in memory while the spool cannot be written
HELD_RETRY_S = 5.0  # how often writing to the file is tried again meanwhile

# A call in a chunk row (the ``chunks`` table) has an id of its own for the sender:
# MEMBER + the chunk's id * CHUNK_CALLS + its index in the chunk. Rows of ``tasks`` keep
# their SQLite ids (far below MEMBER), rows held in memory negative ones.
MEMBER = 1 << 40
CHUNK_CALLS = 1 << 16  # calls in one chunk row, at most
SEPARATOR = "\x1e"  # between the calls' JSON texts in a chunk row's body


def _member(i: int) -> tuple[int, int]:
    """The chunk row and the index in it of the call with id ``i`` (``i >= MEMBER``)."""
    return divmod(i - MEMBER, CHUNK_CALLS)


def _indexes(listed: str) -> set[int]:
    """A chunk row's ``gone`` or ``sent`` column as a set of indexes."""
    return {int(k) for k in listed.split(",")} if listed else set()


def _listed(indexes: set[int]) -> str:
    return ",".join(str(k) for k in sorted(indexes))


@dataclass
class _Held:
    """A task the spool file could not take, kept in memory until it is sent."""

    dest: Destination
    run_id: str
    body: str
    created: float
    task: bytes | None = None
    maybe_sent: bool = False


class Row:
    """A spooled task. ``task``: the import body built when the call was spooled, for the
    destination's own label config (None: the sender builds it from ``content``, which is
    only decoded from the stored JSON when something reads it). A call of a chunk row is
    taken without its run id, read from its content when asked for."""

    __slots__ = ("_body", "_content", "_run_id", "created", "id", "maybe_sent", "size", "task")

    def __init__(
        self,
        id: int,
        run_id: str | None,
        content: dict[str, Any] | None,
        maybe_sent: bool,
        created: float,
        size: int = 0,  # characters of the stored JSON
        task: bytes | None = None,
        body: str | bytes | None = None,  # the stored JSON, decoded on first use
    ) -> None:
        self.id = id
        self._run_id = run_id
        self.maybe_sent = maybe_sent
        self.created = created
        self.size = size
        self.task = task
        self._body = body
        self._content = content

    @property
    def run_id(self) -> str:
        if self._run_id is None:
            try:
                self._run_id = str(self.content["run_id"])
            except Exception:  # content that cannot be read: building its task sets it aside
                self._run_id = ""
        return self._run_id

    @property
    def content(self) -> dict[str, Any]:
        if self._content is None:
            assert self._body is not None
            self._content = loads(self._body)
        return self._content

    def drop_content(self) -> None:
        """Forget the decoded content (read again from the stored JSON if needed): a batch's
        rows wait for the import's answer, and holding every row's decoded content across
        it kept thousands of dicts alive for the app's garbage collections to traverse."""
        if self._body is not None:
            self._content = None

    def __repr__(self) -> str:
        return f"Row(id={self.id}, run_id={self.run_id!r})"


@dataclass(frozen=True)
class Recheck:
    """A batch sent again after an ambiguous attempt, to be checked for duplicates."""

    id: int
    dest: Destination
    project: int
    run_ids: list[str]
    created: float  # when it was sent again
    due: float  # when it is checked next
    checks: int  # checks made so far
    failures: int  # checks that failed in a row


class Spool:
    """Thread-safe access to the spool file; one connection per thread."""

    def __init__(self, path: Path | None, owner: str) -> None:
        """Open (creating if needed) the spool at ``path``; ``None`` keeps it in memory only."""
        self.path = path
        self.owner = owner
        self._local = threading.local()
        self._keep: sqlite3.Connection | None = None
        self._last_counts: dict[str, int] = {}
        self._held: dict[int, _Held] = {}  # id (negative) -> a row the file could not take
        self._held_ids = 0
        self._held_lock = threading.Lock()
        self._held_bytes = 0
        self._retry_write_at = 0.0
        # Trace steps the file could not take (same bound): (dest key, root) -> the trace's
        # destination, newest step's time, and its (seq, JSON) steps; and the traces built
        # from memory whose steps in the file are still to be deleted.
        self._held_steps: dict[tuple[str, str], tuple[Destination, float, list[tuple[int, str]]]]
        self._held_steps = {}
        self._closed_in_memory: set[tuple[str, str]] = set()
        self._reported_full = False
        self._reported_unreadable = False
        self._remembered: set[str] = set()  # destination keys this spool's file holds
        if path is None:
            self._uri = f"file:lstrace-{owner}?mode=memory&cache=shared"
            with _guard:  # a shared in-memory database lives while one connection does
                self._keep = self._db()
        else:
            self._uri = str(path)
            self._prepare_file(path)
        with _guard:
            self._db().executescript(_SCHEMA)
            _add_task_column(self._db())
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO owners VALUES (?, ?, ?, ?)",
                (owner, os.getpid(), _host(), time.time()),
            )
        self._restrict_sidecars()

    @staticmethod
    def _prepare_file(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)

    def _restrict_sidecars(self) -> None:
        if self.path is None:
            return
        for suffix in ("-wal", "-shm"):
            side = Path(str(self.path) + suffix)
            with contextlib.suppress(OSError):
                side.chmod(0o600)

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self._uri, timeout=30, isolation_level=None, check_same_thread=False, uri=True
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with _guard:
            return self._db().execute(sql, args).fetchall()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with _guard:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            with _rolled_back_on_error(db):
                yield db

    def _write(self, sql: str, args: Sequence[Any] = ()) -> None:
        """One statement, which SQLite runs as a transaction of its own."""
        with _guard:
            self._db().execute(sql, args)

    def release(self) -> None:
        """Hand this process's rows back (clean shutdown) so the next process takes them at
        once. Never raises: a spool that cannot be written is reported once (the rows are
        then adopted once this process is gone)."""
        try:
            with self._tx() as db:
                for table in ("tasks", "chunks", "rechecks"):
                    db.execute(f"UPDATE {table} SET owner = NULL WHERE owner = ?", (self.owner,))
                db.execute("DELETE FROM owners WHERE token = ?", (self.owner,))
        except sqlite3.Error as exc:
            self._unreadable(exc)

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            with _guard:
                db.close()
            self._local.db = None

    # -- writing -------------------------------------------------------------

    def add(
        self,
        items: Iterable[tuple[Destination, dict[str, Any]]],
        tasks: Sequence[bytes | None] | None = None,
        refused: Callable[[dict[str, Any], Exception], None] | None = None,
    ) -> int:
        """Spool tasks (claimed by this process) in one transaction; returns how many were new.
        ``tasks``: per item, its import body built for the destination's own label config
        (:attr:`Row.task`), or None.

        A task that cannot be stored (a value JSON cannot hold) costs only itself: it is
        left out and handed to ``refused`` with the error, the others are stored."""
        now = time.time()
        dests: dict[str, Destination] = {}
        rows = []
        built = iter(tasks) if tasks is not None else itertools.repeat(None)
        for (dest, content), task in zip(items, built, strict=False):  # repeat() never ends
            try:
                rows.append(
                    (dest.key, str(content["run_id"]), dumps(content), now, self.owner, task)
                )
            except Exception as exc:
                if refused is None:
                    raise
                refused(content, exc)
                continue
            dests[dest.key] = dest
        return self._add_rows(dests, rows, now, refused)

    def add_encoded(
        self,
        items: Iterable[tuple[Destination, str, str]],
        refused: Callable[[dict[str, Any], Exception], None] | None = None,
    ) -> int:
        """:meth:`add` for contents already encoded (``(destination, run_id, JSON text)``,
        the text from :func:`lstrace._json.dumps`): the spooler encodes each call as it
        converts it and lets go of the call and its content at once."""
        now = time.time()
        dests: dict[str, Destination] = {}
        rows = []
        for dest, run_id, body in items:
            rows.append((dest.key, run_id, body, now, self.owner, None))
            dests[dest.key] = dest
        return self._add_rows(dests, rows, now, refused)

    def _add_rows(
        self,
        dests: dict[str, Destination],
        rows: list[tuple[Any, ...]],
        now: float,
        refused: Callable[[dict[str, Any], Exception], None] | None,
    ) -> int:
        if not rows:
            return 0
        if self._held and not self._unheld(now):
            return self._hold(dests, rows, refused)  # the file still takes nothing
        try:
            return self._insert(dests, rows)
        except sqlite3.Error as exc:  # disk full, I/O error, locked for longer than the timeout
            self._cannot_write(exc)
            return self._hold(dests, rows, refused)

    def _insert(self, dests: dict[str, Destination], rows: list[tuple[Any, ...]]) -> int:
        """Store ``rows`` (``(dest key, run id, JSON, created, owner, task)``) in one
        transaction: the calls of one destination together as one chunk row, the others
        (an import body built, a pairwise call) one row each. Returns how many calls."""
        new = {key: dest for key, dest in dests.items() if key not in self._remembered}
        singles, chunks = _chunked(rows, dests)
        statements = []  # of tasks rows: SQL and values
        start = 0
        for size in _insert_parts(len(singles)):
            part = singles[start : start + size]
            statements.append((_insert_sql(size), [v for row in part for v in row]))
            start += size
        if not new and not chunks and len(statements) == 1:  # a transaction of its own
            with _guard:
                db = self._db()
                before = db.total_changes
                db.execute(*statements[0])
                return db.total_changes - before
        with self._tx() as db:
            _remember(db, new)
            added = sum(_store_chunk(db, chunk) for chunk in chunks)
            before = db.total_changes
            for statement in statements:
                db.execute(*statement)
            added += db.total_changes - before
        self._remembered.update(new)  # only once committed
        return added

    # -- rows the file could not take, held in memory (bounded) and sent from there --

    def _hold(
        self,
        dests: dict[str, Destination],
        rows: list[tuple[Any, ...]],
        refused: Callable[[dict[str, Any], Exception], None] | None,
    ) -> int:
        """Keep rows in memory, up to ``HELD_MAX_BYTES``; past that each is refused as
        :class:`SpoolFull` (counted by the caller). Returns how many were kept."""
        kept = 0
        for key, run_id, body, created, _, task in rows:
            if self._held_bytes + len(body) > HELD_MAX_BYTES:
                if refused is not None:
                    refused(json.loads(body), SpoolFull(f"{self.path}: memory bound reached"))
                continue
            with self._held_lock:
                self._held_ids -= 1
                self._held[self._held_ids] = _Held(dests[key], run_id, body, created, task)
                self._held_bytes += len(body)
            kept += 1
        return kept

    def _unheld(self, now: float) -> bool:
        """Try (every few seconds) to move held rows into the file; True once none is left."""
        if now < self._retry_write_at:
            return False
        self._retry_write_at = now + HELD_RETRY_S
        held = self._held_rows()
        dests = {h.dest.key: h.dest for _, h in held}
        rows = [(h.dest.key, h.run_id, h.body, h.created, self.owner, h.task) for _, h in held]
        try:
            self._insert(dests, rows)
        except sqlite3.Error:
            return False
        for i, _ in held:
            self._drop_held(i)
        logger.warning("lstrace: the spool at %s takes tasks again", self.path)
        self._reported_full = False
        return True

    def _held_rows(self) -> list[tuple[int, _Held]]:
        with self._held_lock:
            return list(self._held.items())

    def _drop_held(self, i: int) -> None:
        with self._held_lock:
            held = self._held.pop(i, None)
            if held is not None:
                self._held_bytes -= len(held.body)

    def _cannot_write(self, exc: sqlite3.Error) -> None:
        self._retry_write_at = time.time() + HELD_RETRY_S
        if not self._reported_full:
            self._reported_full = True
            logger.error(
                "lstrace: cannot write to the spool at %s (%s); captured calls are kept in "
                "memory (up to %d MB) and sent from there, calls past that are counted as "
                "failed (spool_full). Free disk space or set LSTRACE_SPOOL_PATH.",
                self.path,
                exc,
                HELD_MAX_BYTES // 1_000_000,
            )

    def _split(self, ids: Iterable[int]) -> tuple[list[int], dict[int, set[int]]]:
        """Forget held rows among ``ids``; returns the others: ids of ``tasks`` rows, and
        per chunk row the indexes of its calls."""
        rest = []
        members: dict[int, set[int]] = {}
        for i in ids:
            if i < 0:
                self._drop_held(i)
            elif i >= MEMBER:
                chunk, k = _member(i)
                members.setdefault(chunk, set()).add(k)
            else:
                rest.append(i)
        return rest, members

    def delete(self, ids: Iterable[int]) -> None:
        """Forget tasks that Label Studio confirmed."""
        rows, members = self._split(ids)
        if not members:
            if rows:
                self._write(f"DELETE FROM tasks WHERE id IN ({_id_list(rows)})")
            return
        with self._tx() as db:
            if rows:
                db.execute(f"DELETE FROM tasks WHERE id IN ({_id_list(rows)})")
            _forget_members(db, members)

    def mark_attempt(self, ids: Iterable[int], *, maybe_sent: bool) -> None:
        """Record an import attempt and whether it may have reached the server."""
        ids = list(ids)
        for i in ids:
            if i in self._held:
                self._held[i].maybe_sent = maybe_sent
        rows, members = self._split(i for i in ids if i >= 0)
        mark = "UPDATE tasks SET attempts = attempts + 1, maybe_sent = ?"
        if rows and not members:
            self._write(f"{mark} WHERE id IN ({_id_list(rows)})", (int(maybe_sent),))
            return
        if not members:
            return
        with self._tx() as db:
            if rows:
                db.execute(f"{mark} WHERE id IN ({_id_list(rows)})", (int(maybe_sent),))
            found = db.execute(
                f"SELECT id, sent FROM chunks WHERE id IN ({_id_list(members)})"
            ).fetchall()
            for chunk, sent in found:
                before = _indexes(sent)
                after = before | members[chunk] if maybe_sent else before - members[chunk]
                db.execute(
                    "UPDATE chunks SET attempts = attempts + 1, sent = ? WHERE id = ?",
                    (_listed(after), chunk),
                )

    def mark_dead(self, ids: Iterable[int], reason: str) -> None:
        """Set aside tasks Label Studio refuses for good; they stay visible in ``status``
        (held rows, which the file could not take, are only counted by the caller). A call
        of a chunk row moves to a row of its own, where ``lstrace set-aside`` finds it."""
        rows, members = self._split(ids)
        if not rows and not members:
            return
        with self._tx() as db:
            db.executemany("UPDATE tasks SET dead = ? WHERE id = ?", [(reason, i) for i in rows])
            if members:
                _set_aside_members(db, members, reason)

    def heartbeat(self) -> None:
        with self._tx() as db:
            db.execute("UPDATE owners SET heartbeat = ? WHERE token = ?", (time.time(), self.owner))

    # -- reading -------------------------------------------------------------

    def adopt_orphans(self, urls: Collection[str]) -> int:
        """Take over the rows that ended processes left for the servers at ``urls``;
        returns how many. Rows of a process that died are released first, so that
        rows for other servers wait, unowned, for a process that can send them."""
        now = time.time()
        with self._tx() as db:
            owners = db.execute("SELECT token, pid, host, heartbeat FROM owners").fetchall()
            dead = [
                token
                for token, pid, host, beat in owners
                if token != self.owner and (now - beat > HEARTBEAT_STALE_S or not _alive(pid, host))
            ]
            for token in dead:
                for table in ("tasks", "chunks", "rechecks"):
                    db.execute(f"UPDATE {table} SET owner = NULL WHERE owner = ?", (token,))
                db.execute("DELETE FROM owners WHERE token = ?", (token,))
            wanted = [
                key
                for key, spec in db.execute("SELECT key, spec FROM destinations").fetchall()
                if Destination.from_spec(json.loads(spec)).url in urls
            ]
            taken = 0
            for start in range(0, len(wanted), 500):  # SQLite's bound on query variables
                keys = wanted[start : start + 500]
                among = f"owner IS NULL AND dest IN ({','.join('?' * len(keys))})"
                ((calls,),) = db.execute(
                    f"SELECT COALESCE(SUM(live), 0) FROM chunks WHERE {among}", keys
                ).fetchall()
                taken += int(calls)
                db.execute(f"UPDATE chunks SET owner = ? WHERE {among}", (self.owner, *keys))
                taken += db.execute(
                    f"UPDATE tasks SET owner = ? WHERE {among}", (self.owner, *keys)
                ).rowcount
                # duplicate checks go with the tasks: same server, same key
                db.execute(f"UPDATE rechecks SET owner = ? WHERE {among}", (self.owner, *keys))
        return taken

    def others_ended(self) -> bool | None:
        """Whether another process registered in this spool has ended (its rows are then
        taken over by :meth:`adopt_orphans`); None when no other process is registered."""
        rows = self._query(
            "SELECT pid, host, heartbeat FROM owners WHERE token != ?", (self.owner,)
        )
        if not rows:
            return None
        now = time.time()
        return any(not owner_alive(pid, host, beat, now) for pid, host, beat in rows)

    def waiting_urls(self) -> set[str]:
        """Servers that live rows owned by this process, or by nobody, wait for."""
        rows = self._query(
            "SELECT DISTINCT d.spec FROM destinations d WHERE d.key IN"
            " (SELECT dest FROM tasks WHERE (owner = ? OR owner IS NULL) AND dead IS NULL"
            " UNION SELECT dest FROM chunks WHERE owner = ? OR owner IS NULL)",
            (self.owner, self.owner),
        )
        held = {h.dest.url for _, h in self._held_rows()}
        return held | {Destination.from_spec(json.loads(spec)).url for (spec,) in rows}

    def backlog(self, dest: Destination | None = None) -> dict[str, tuple[Destination, int, float]]:
        """Per destination (or just ``dest``): its live rows owned here, and the oldest's time."""
        mine = "owner = ?" + (" AND dest = ?" if dest is not None else "")
        sql = (
            "SELECT d.spec, SUM(n), MIN(created) FROM ("
            f" SELECT dest, COUNT(*) AS n, MIN(created) AS created FROM tasks WHERE {mine}"
            " AND dead IS NULL GROUP BY dest UNION ALL"
            f" SELECT dest, SUM(live), MIN(created) FROM chunks WHERE {mine} GROUP BY dest"
            ") JOIN destinations d ON d.key = dest GROUP BY dest"
        )
        args: tuple[Any, ...] = (self.owner,) if dest is None else (self.owner, dest.key)
        rows = self._query(sql, args * 2)
        found = [Destination.from_spec(json.loads(spec)) for spec, _, _ in rows]
        result = {d.key: (d, n, oldest) for d, (_, n, oldest) in zip(found, rows, strict=True)}
        for held in [h for _, h in self._held_rows()]:
            if dest is None or held.dest.key == dest.key:
                d, n, oldest = result.get(held.dest.key, (held.dest, 0, held.created))
                result[held.dest.key] = (d, n + 1, min(oldest, held.created))
        return result

    def take(self, dest: Destination, limit: int) -> list[Row]:
        """The oldest rows of a destination owned by this process; rows held in memory
        (the file could not take them) first, since they are the ones a crash would lose,
        then the oldest calls of rows of one call and of chunk rows alike, in the order they
        were spooled (a retry takes the batch an ambiguous attempt sent, not a newer one)."""
        held = [(i, h) for i, h in self._held_rows() if h.dest.key == dest.key]
        if held:
            return [
                Row(i, h.run_id, None, h.maybe_sent, h.created, len(h.body), h.task, h.body)
                for i, h in sorted(held, reverse=True)[:limit]
            ]
        rows = self._take_rows(dest, limit) + self._take_members(dest, limit)
        return sorted(rows, key=lambda row: row.created)[:limit]  # stable: by id within

    def _take_rows(self, dest: Destination, limit: int) -> list[Row]:
        where = "owner = ? AND dest = ? AND dead IS NULL ORDER BY id LIMIT ?"
        args = (self.owner, dest.key, limit)
        if _sqlite.json:
            try:
                return self._take_listed(where, args)
            except sqlite3.OperationalError as exc:  # a SQLite built without JSON functions
                if "no such function" not in str(exc):
                    raise
                _sqlite.json = False
        rows = self._query(
            f"SELECT id, run_id, body, maybe_sent, created, task FROM tasks WHERE {where}", args
        )
        return [Row(i, r, None, bool(m), c, len(b), t, b) for i, r, b, m, c, t in rows]

    def _take_members(self, dest: Destination, limit: int) -> list[Row]:
        """Up to ``limit`` calls still waiting in the oldest chunk rows of ``dest``: which
        rows, from their counts alone, then those rows whole (few: a chunk holds a pass)."""
        wanted, calls = [], 0
        for chunk, live in self._query(
            "SELECT id, live FROM chunks WHERE owner = ? AND dest = ? ORDER BY id LIMIT ?",
            (self.owner, dest.key, limit),
        ):
            if calls >= limit:
                break
            wanted.append(chunk)
            calls += live
        if not wanted:
            return []
        rows: list[Row] = []
        for chunk, sent, created, gone, body in sorted(
            self._query(
                "SELECT c.id, sent, created, gone, body FROM chunks c"
                f" JOIN chunk_bodies b ON b.id = c.id WHERE c.id IN ({_id_list(wanted)})"
            )
        ):
            skip, maybe = _indexes(gone), _indexes(sent)
            for k, text in enumerate(body.split(SEPARATOR)):
                if k in skip:
                    continue
                if len(rows) == limit:
                    return rows
                i = MEMBER + chunk * CHUNK_CALLS + k
                rows.append(Row(i, None, None, k in maybe, created, len(text), body=text))
        return rows

    def _take_listed(self, where: str, args: tuple[Any, ...]) -> list[Row]:
        """:meth:`take`'s rows as one JSON array: SQLite hands them over in one step, where
        fetching a row at a time let go of the GIL once per row (and then waited, up to the
        switch interval, to get it back from a busy app thread)."""
        ((found,),) = self._query(
            "SELECT json_group_array(json_array(id, run_id, CASE WHEN typeof(body) = 'text'"
            " THEN body ELSE '' END, maybe_sent, printf('%!.17g', created), task IS NOT NULL"
            f" OR typeof(body) != 'text')) FROM (SELECT * FROM tasks WHERE {where})",
            args,
        )
        # by id, whatever order the aggregate kept; ``created`` as text: JSON would round it
        listed = sorted(loads(found))
        odd: dict[int, tuple[Any, bytes | None]] = {}
        if any(row[5] for row in listed):  # an import body an earlier version stored
            ids = _id_list(row[0] for row in listed if row[5])
            for i, body, task in self._query(
                f"SELECT id, body, task FROM tasks WHERE id IN ({ids})"
            ):
                odd[i] = (body, task)
        rows = []
        for i, r, b, m, c, special in listed:
            body, task = odd[i] if special else (b, None)
            rows.append(Row(i, r, None, bool(m), float(c), len(body), task, body))
        return rows

    def count(self, *, mine: bool = False) -> int:
        """Live rows waiting (all processes, or only this one's). Never raises: when the
        file cannot be read (deleted, locked by another process), the last count read."""
        owned = " AND owner = ?" if mine else ""
        sql = (
            f"SELECT (SELECT COUNT(*) FROM tasks WHERE dead IS NULL{owned})"
            f" + (SELECT COALESCE(SUM(live), 0) FROM chunks WHERE 1{owned})"
        )
        args: tuple[Any, ...] = (self.owner, self.owner) if mine else ()
        return self._count(f"live:{mine}", sql, args) + len(self._held)

    def held(self) -> tuple[int, int]:
        """Task rows and trace steps held in memory because the file could not take them
        (they are sent from there, and lost if the process ends first)."""
        with self._held_lock:
            return len(self._held), sum(len(s) for _, _, s in self._held_steps.values())

    def count_maybe_sent(self) -> int:
        """This process's live rows whose last import attempt may have reached the server
        (in flight, or failed without an answer); never raises, like :meth:`count`."""
        held = sum(1 for _, h in self._held_rows() if h.maybe_sent)
        sql = (  # a chunk row's ``sent``: indexes, comma separated
            "SELECT (SELECT COUNT(*) FROM tasks WHERE dead IS NULL AND owner = ? AND maybe_sent"
            " = 1) + (SELECT COALESCE(SUM(length(sent) - length(replace(sent, ',', '')) + 1), 0)"
            " FROM chunks WHERE owner = ? AND sent != '')"
        )
        return self._count("maybe_sent", sql, (self.owner, self.owner)) + held

    def count_dead(self) -> int:
        """Set-aside rows (all processes); never raises, like :meth:`count`."""
        return self._count("dead", "SELECT COUNT(*) FROM tasks WHERE dead IS NOT NULL")

    def _count(self, name: str, sql: str, args: tuple[Any, ...] = ()) -> int:
        # What the public functions (stats, flush, the exit flush) read: a spool deleted
        # or locked under the process is reported once, never raised into the app.
        try:
            value = int(self._query(sql, args)[0][0])
        except sqlite3.Error as exc:
            self._unreadable(exc)
            return self._last_counts.get(name, 0)
        self._last_counts[name] = value
        return value

    def _unreadable(self, exc: sqlite3.Error) -> None:
        if not self._reported_unreadable:
            self._reported_unreadable = True
            logger.warning(
                "lstrace: cannot read the spool at %s (%s): was it deleted or locked by "
                "another process? Counts show the last values read; calls this process "
                "already spooled are still sent while it runs.",
                self.path,
                exc,
            )

    # -- batches to check for duplicates (lstrace/_delivery/repair.py) -------------

    def add_recheck(
        self, dest: Destination, project: int, run_ids: Sequence[str], due: float
    ) -> None:
        """Remember a batch about to be sent again after an ambiguous attempt (the same batch
        sent again once more is remembered once, from this send on)."""
        batch = json.dumps({"v": RECHECK_VERSION, "project": project, "run_ids": list(run_ids)})
        now = time.time()
        with self._tx() as db:
            _remember(db, {dest.key: dest})
            again = db.execute(
                "UPDATE rechecks SET created = ?, due = ?, checks = 0, failures = 0"
                " WHERE dest = ? AND batch = ? AND owner = ?",
                (now, due, dest.key, batch, self.owner),
            ).rowcount
            if not again:
                db.execute(
                    "INSERT INTO rechecks (dest, batch, created, due, owner)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (dest.key, batch, now, due, self.owner),
                )

    def rechecks(self) -> list[Recheck]:
        """This process's batches to check, soonest first. Rows of a layout this version
        does not know (a newer lstrace wrote them) are left for that version."""
        rows = self._query(
            "SELECT r.id, d.spec, r.batch, r.created, r.due, r.checks, r.failures"
            " FROM rechecks r JOIN destinations d ON d.key = r.dest"
            " WHERE r.owner = ? ORDER BY r.due, r.id",
            (self.owner,),
        )
        found = []
        for i, spec, batch, created, due, checks, failures in rows:
            try:
                body = json.loads(batch)
                if body.get("v") != RECHECK_VERSION:
                    continue
                dest = Destination.from_spec(json.loads(spec))
                run_ids = [str(r) for r in body["run_ids"]]
                found.append(
                    Recheck(i, dest, int(body["project"]), run_ids, created, due, checks, failures)
                )
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
        return found

    def recheck_later(self, recheck_id: int, due: float, *, checked: bool) -> None:
        """Check again at ``due``: after a check that was made (``checked``) or that failed."""
        with self._tx() as db:
            if checked:
                sql = "UPDATE rechecks SET due = ?, checks = checks + 1, failures = 0 WHERE id = ?"
            else:
                sql = "UPDATE rechecks SET due = ?, failures = failures + 1 WHERE id = ?"
            db.execute(sql, (due, recheck_id))

    def recheck_done(self, recheck_id: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM rechecks WHERE id = ?", (recheck_id,))

    def count_rechecks(self) -> int:
        """Batches waiting for a duplicate check (every process's)."""
        return int(self._query("SELECT COUNT(*) FROM rechecks")[0][0])

    # -- trace steps (trace mode) ---------------------------------------------------

    def add_steps(
        self,
        items: Iterable[tuple[Destination, str, int, dict[str, Any]]],
        refused: Callable[[dict[str, Any], Exception], None] | None = None,
    ) -> int:
        """Spool steps of open traces (``dest``, root run id, sequence, content). A step
        that cannot be stored costs only itself, as in :meth:`add` (``refused``). Steps the
        file cannot take (disk full) are kept in memory within the bound of :meth:`_hold`
        (past it each is refused as :class:`SpoolFull`); :meth:`close_trace` reads both."""
        now = time.time()
        dests: dict[str, Destination] = {}
        rows = []
        for dest, root, seq, content in items:
            try:
                rows.append((dest.key, root, seq, json.dumps(content), now, self.owner))
            except Exception as exc:
                if refused is None:
                    raise
                refused(content, exc)
                continue
            dests[dest.key] = dest
        if not rows:
            return 0
        if self._reported_full and now < self._retry_write_at:  # it took nothing just now
            return self._hold_steps(dests, rows, refused)
        try:
            with self._tx() as db:
                _remember(db, dests)
                before = db.total_changes
                db.executemany(
                    "INSERT OR IGNORE INTO trace_steps (dest, root, seq, body, created, owner)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
                return db.total_changes - before
        except sqlite3.Error as exc:  # disk full, I/O error, locked for longer than the timeout
            self._cannot_write(exc)
            return self._hold_steps(dests, rows, refused)

    def _hold_steps(
        self,
        dests: dict[str, Destination],
        rows: list[tuple[Any, ...]],
        refused: Callable[[dict[str, Any], Exception], None] | None,
    ) -> int:
        kept = 0
        for key, root, seq, body, created, _ in rows:
            with self._held_lock:
                if self._held_bytes + len(body) <= HELD_MAX_BYTES:
                    _, _, steps = self._held_steps.get((key, root), (dests[key], created, []))
                    steps.append((seq, body))
                    self._held_steps[key, root] = (dests[key], created, steps)
                    self._held_bytes += len(body)
                    kept += 1
                    continue
            if refused is not None:
                refused(json.loads(body), SpoolFull(f"{self.path}: memory bound reached"))
        return kept

    def _take_held_steps(self, key: str, root: str) -> list[tuple[int, str]]:
        with self._held_lock:
            _, _, steps = self._held_steps.pop((key, root), (None, 0.0, []))
            self._held_bytes -= sum(len(body) for _, body in steps)
        return steps

    def close_trace(
        self,
        dest: Destination,
        root: str,
        build: Callable[[Iterator[tuple[int, str]]], dict[str, Any] | None],
        refused: Callable[[dict[str, Any], Exception], None] | None = None,
    ) -> bool:
        """Turn a trace's steps into its one task row, atomically: ``build`` gets the
        steps' (size, JSON) in sequence order and returns the task content (None: drop).
        The steps are deleted either way; returns True when a task row was added.

        When the file cannot be written (disk full), the task is built from what could be
        read (the file's steps and those held in memory) and kept in memory like a task
        :meth:`add` could not store (``refused`` past the bound); the trace's steps left in
        the file are deleted once it takes writes again (see :meth:`open_traces`)."""
        held = self._take_held_steps(dest.key, root)
        built: list[dict[str, Any] | None] = []

        def build_once(stored: Iterable[tuple[int, str]]) -> dict[str, Any] | None:
            steps = sorted([*stored, *held])  # by seq; held steps are the newest, mostly
            built.append(build((len(body), body) for _, body in steps))
            return built[0]

        try:
            with self._tx() as db:
                cursor = db.execute(
                    "SELECT seq, body FROM trace_steps WHERE dest = ? AND root = ? ORDER BY seq",
                    (dest.key, root),
                )
                content = build_once(cursor.fetchall())
                db.execute("DELETE FROM trace_steps WHERE dest = ? AND root = ?", (dest.key, root))
                if content is None:
                    return False
                db.execute(
                    "INSERT OR IGNORE INTO destinations VALUES (?, ?)",
                    (dest.key, json.dumps(dest.to_spec())),
                )
                before = db.total_changes
                db.execute(
                    "INSERT OR IGNORE INTO tasks (dest, run_id, body, created, owner)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (dest.key, root, json.dumps(content), time.time(), self.owner),
                )
                return db.total_changes > before
        except sqlite3.Error as exc:
            self._cannot_write(exc)
        if not built:  # the file could not even be read: the steps held in memory
            build_once(self._readable_steps(dest.key, root))
        content = built[0]
        with self._held_lock:
            self._closed_in_memory.add((dest.key, root))
        if content is None:
            return False
        row = (dest.key, root, json.dumps(content), time.time(), self.owner, None)
        return self._hold({dest.key: dest}, [row], refused) > 0

    def _readable_steps(self, key: str, root: str) -> list[tuple[int, str]]:
        try:
            return self._query(
                "SELECT seq, body FROM trace_steps WHERE dest = ? AND root = ?", (key, root)
            )
        except sqlite3.Error:
            return []

    def _forget_closed(self) -> set[tuple[str, str]]:
        """Delete the file's steps of traces built from memory; returns those still there."""
        with self._held_lock:
            closed = set(self._closed_in_memory)
        if not closed or (self._reported_full and time.time() < self._retry_write_at):
            return closed
        try:
            with self._tx() as db:
                db.executemany(
                    "DELETE FROM trace_steps WHERE dest = ? AND root = ?", sorted(closed)
                )
        except sqlite3.Error:
            return closed
        with self._held_lock:
            self._closed_in_memory -= closed
        return set()

    def open_traces(self) -> list[tuple[Destination, str, str, float]]:
        """Traces with spooled steps and no task yet: (destination, root, who holds them:
        ``"mine"``, ``"live"`` (another live process of this spool) or ``"gone"``, the
        newest step's time)."""
        closed = self._forget_closed()  # already tasks, held in memory
        rows = self._query(
            "SELECT d.spec, s.root, MAX(CASE WHEN s.owner = ? THEN 2"
            " WHEN o.token IS NOT NULL THEN 1 ELSE 0 END), MAX(s.created) FROM trace_steps s"
            " JOIN destinations d ON d.key = s.dest"
            " LEFT JOIN owners o ON o.token = s.owner GROUP BY s.dest, s.root",
            (self.owner,),
        )
        holders = ("gone", "live", "mine")
        found = [
            (Destination.from_spec(json.loads(spec)), root, holders[held], newest)
            for spec, root, held, newest in rows
        ]
        with self._held_lock:
            held = {k: (dest, newest) for k, (dest, newest, _) in self._held_steps.items()}
        merged = []
        for dest, root, holder, newest in found:
            if (dest.key, root) in closed:
                continue
            _, in_memory = held.pop((dest.key, root), (dest, 0.0))
            merged.append((dest, root, "mine" if in_memory else holder, max(newest, in_memory)))
        return merged + [(dest, root, "mine", newest) for (_, root), (dest, newest) in held.items()]

    def count_steps(self) -> int:
        """Steps of unfinished traces waiting in the spool (every process's)."""
        return int(self._query("SELECT COUNT(*) FROM trace_steps")[0][0])


class _SQLiteBuild:
    """What this process's SQLite can do (a holder: module state without ``global``).
    ``json``: its JSON functions (built in since 3.38, compiled in by most builds before),
    through which take() reads a batch; a build without them is noticed once and read
    row by row."""

    json = True


_sqlite = _SQLiteBuild()


# Held around every use of SQLite in this process, and by fork() (see below), so no
# thread is inside SQLite when a child is forked. A child copies SQLite's in-process
# state: a copy taken mid-call holds a mutex for ever (the child hangs when it frees the
# parent's connections) or a write lock for ever ("database is locked" in the child).
_guard = threading.Lock()


def _new_guard_in_child() -> None:
    global _guard  # noqa: PLW0603 - the lock the parent held at fork() cannot be released here
    _guard = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=lambda: _guard.acquire(),  # noqa: PLW0108 - the child replaces the lock
        after_in_parent=lambda: _guard.release(),  # noqa: PLW0108
        after_in_child=_new_guard_in_child,
    )


def _add_task_column(db: sqlite3.Connection) -> None:
    """Spools written before ``tasks.task`` existed get the column (NULL: built when sent)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(tasks)")}
    if "task" not in columns:
        try:
            db.execute("ALTER TABLE tasks ADD COLUMN task BLOB")
        except sqlite3.OperationalError:  # another process added it first
            columns = {row[1] for row in db.execute("PRAGMA table_info(tasks)")}
            if "task" not in columns:
                raise


# Rows per INSERT statement, at most. One statement for many rows is one step into SQLite,
# so the thread lets go of the GIL once per statement instead of once per row: a background
# thread that lets go of it while the app's thread is busy waits up to the switch interval
# (5 ms) to get it back. The statements hold a power of two of rows each (200 rows: 128 +
# 64 + 8), so that the sqlite3 module's statement cache keeps a few of them, not one per
# chunk size (that cost 20 MB of prepared statements). 6 values a row stay under SQLite's
# oldest limit of 999 variables.
INSERT_ROWS = 128


def _insert_parts(rows: int) -> list[int]:
    """How many rows each INSERT statement of ``rows`` rows holds: powers of two."""
    parts = []
    while rows > 0:
        size = min(INSERT_ROWS, 1 << (rows.bit_length() - 1))
        parts.append(size)
        rows -= size
    return parts


@functools.lru_cache(maxsize=INSERT_ROWS.bit_length())
def _insert_sql(rows: int) -> str:
    values = ",".join(["(?, ?, ?, ?, ?, ?)"] * rows)
    return f"INSERT OR IGNORE INTO tasks (dest, run_id, body, created, owner, task) VALUES {values}"


def _chunked(
    rows: list[tuple[Any, ...]], dests: dict[str, Destination]
) -> tuple[list[tuple[Any, ...]], list[list[tuple[Any, ...]]]]:
    """``rows`` split into those stored one by one and groups of a destination's calls
    stored as one chunk row each: not a pairwise destination's (paired one by one when
    sent), not a row with an import body built, not a text holding the separator (no
    text :func:`lstrace._json.dumps` writes does); a group has two calls at least."""
    singles: list[tuple[Any, ...]] = []
    groups: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        key, _, body, _, _, task = row
        if task is None and dests[key].mode != "pairwise" and SEPARATOR not in body:
            groups.setdefault(key, []).append(row)
        else:
            singles.append(row)
    chunks: list[list[tuple[Any, ...]]] = []
    for group in groups.values():
        for i in range(0, len(group), CHUNK_CALLS):
            piece = group[i : i + CHUNK_CALLS]
            if len(piece) > 1:
                chunks.append(piece)
            else:
                singles += piece
    return singles, chunks


def _store_chunk(db: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> int:
    """One chunk row for ``rows`` (one destination's); returns how many calls it holds."""
    key, _, _, created, owner, _ = rows[0]
    chunk = db.execute(
        "INSERT INTO chunks (dest, owner, created, live) VALUES (?, ?, ?, ?)",
        (key, owner, created, len(rows)),
    ).lastrowid
    body = SEPARATOR.join([row[2] for row in rows])
    db.execute("INSERT INTO chunk_bodies (id, body) VALUES (?, ?)", (chunk, body))
    return len(rows)


def _forget_members(db: sqlite3.Connection, members: dict[int, set[int]]) -> None:
    """Mark calls of chunk rows gone (delivered, or moved out); a chunk row whose calls
    are all gone is deleted."""
    empty = []
    for chunk, live, gone, sent in db.execute(
        f"SELECT id, live, gone, sent FROM chunks WHERE id IN ({_id_list(members)})"
    ).fetchall():
        before = _indexes(gone)
        after = before | members[chunk]
        left = live - len(after - before)
        if left <= 0:
            empty.append(chunk)
        else:
            db.execute(
                "UPDATE chunks SET live = ?, gone = ?, sent = ? WHERE id = ?",
                (left, _listed(after), _listed(_indexes(sent) - after), chunk),
            )
    if empty:
        db.execute(f"DELETE FROM chunks WHERE id IN ({_id_list(empty)})")
        db.execute(f"DELETE FROM chunk_bodies WHERE id IN ({_id_list(empty)})")


def _set_aside_members(db: sqlite3.Connection, members: dict[int, set[int]], reason: str) -> None:
    """Move calls of chunk rows to rows of their own in ``tasks``, set aside (dead)."""
    found = db.execute(
        "SELECT c.id, dest, owner, created, attempts, gone, sent, body FROM chunks c"
        f" JOIN chunk_bodies b ON b.id = c.id WHERE c.id IN ({_id_list(members)})"
    ).fetchall()
    for chunk, dest, owner, created, attempts, gone, sent, body in found:
        texts = body.split(SEPARATOR)
        maybe = _indexes(sent)
        for k in sorted(members[chunk] - _indexes(gone)):
            try:
                run_id = str(loads(texts[k])["run_id"])
            except Exception:  # a text that cannot be read: named by where it was
                run_id = f"chunk-{chunk}-{k}"
            for name in (run_id, f"{run_id}#chunk-{chunk}-{k}"):  # a run id met before
                moved = db.execute(
                    "INSERT OR IGNORE INTO tasks (dest, run_id, body, created, owner, attempts,"
                    " maybe_sent, dead) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (dest, name, texts[k], created, owner, attempts, int(k in maybe), reason),
                ).rowcount
                if moved:
                    break
    _forget_members(db, members)


def _id_list(ids: Iterable[int]) -> str:
    """Row ids as a comma-separated SQL list: one statement for them all instead of one
    per row. Only integers go in (``int()`` refuses anything else)."""
    return ",".join([str(int(i)) for i in ids])


def _host() -> str:
    return os.uname().nodename if hasattr(os, "uname") else "localhost"


def owner_alive(pid: int, host: str, heartbeat: float, now: float) -> bool:
    """Whether a process registered as an owner of a spool still runs: a fresh heartbeat
    and, on this host, a pid that exists."""
    return now - heartbeat <= HEARTBEAT_STALE_S and _alive(pid, host)


def _alive(pid: int, host: str) -> bool:
    if host != _host():
        return True  # cannot tell: rely on the heartbeat
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A process that ended and that its parent has not reaped yet: its pid still answers
    ``kill(pid, 0)`` (Linux: the state in ``/proc/<pid>/stat``; elsewhere, False)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()[:1]
    except OSError:
        return False
    return state in ([b"Z"], [b"X"])


def _remember(db: sqlite3.Connection, dests: dict[str, Destination]) -> None:
    """Store the destinations rows refer to (by key), once each."""
    db.executemany(
        "INSERT OR IGNORE INTO destinations VALUES (?, ?)",
        [(key, json.dumps(dest.to_spec())) for key, dest in dests.items()],
    )
