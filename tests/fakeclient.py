"""An in-memory Label Studio behind lstrace's client seam, failing on cue (issue 10.4).

The sender is given a ``connect(url, api_key, timeout)`` that returns a
:class:`~lstrace._client.Client`; :meth:`FakeLabelStudio.connect` returns one that
keeps projects and tasks in memory and raises the :class:`DeliveryFailure` a real
server's answer would be classified as, when a test asks for it:

- :meth:`FakeLabelStudio.fail_imports` queues failures for the next bulk imports
  (a 503, a 429 with ``Retry-After``, a timeout after the tasks arrived...);
- :meth:`FakeLabelStudio.refuse` makes the server refuse (400) any import that
  holds the task of a given run id, as it refuses a task it cannot store;
- :attr:`FakeLabelStudio.down` makes every request fail as a refused connection does;
- a fault with ``lands_late`` stands for an import held by a slow server or proxy: the
  client times out, and the tasks are stored only when the test calls
  :meth:`FakeLabelStudio.land_late` (after the sender sent them again, say);
  :meth:`FakeLabelStudio.annotate` gives a stored task an annotation;
- :meth:`FakeLabelStudio.hold_imports` keeps imports in flight (the request sent, no
  answer yet) until the test sets the event it returns.

Only failure handling is tested through it: what lstrace sends is checked against
recorded cassettes, and every path tested here is also proven against a real Label
Studio in ``tests/live/`` (``test_faults.py``, ``test_faults_duplicates.py``,
``test_outages.py``).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lstrace._client import Client, ProjectInfo, TaskCopy
from lstrace._errors import DeliveryFailure, FailureKind
from lstrace._labelconfig import DEFAULT_CONFIGS, PairTarget, default_target, target_from_xml

URL = "http://fake-label-studio.test"
KEY = "fake-key-0123456789abcdef0123456789abcdef"  # never sent anywhere


@dataclass(frozen=True)
class Fault:
    """How one import request fails.

    ``arrived``: the server stored the tasks before the failure (a reply lost on the way
    back), so a retry that re-sent them would make duplicates. ``lands_late``: the server
    stores them only later, when the test says so (:meth:`FakeLabelStudio.land_late`).
    """

    kind: FailureKind
    status: int | None = None
    retry_after: float | None = None
    maybe_sent: bool = False
    arrived: bool = False
    lands_late: bool = False

    def failure(self, url: str) -> DeliveryFailure:
        what = f"HTTP {self.status}" if self.status is not None else "no answer"
        return DeliveryFailure(
            self.kind,
            f"Label Studio at {url} failed to import tasks ({what}; injected by the test)",
            status=self.status,
            retry_after=self.retry_after,
            maybe_sent=self.maybe_sent,
            what="import tasks",
            url=url,
        )


UNAVAILABLE = Fault(FailureKind.RETRY, 503, maybe_sent=True)
TIMEOUT_AFTER_ARRIVAL = Fault(FailureKind.RETRY, None, maybe_sent=True, arrived=True)
REFUSED_KEY = Fault(FailureKind.AUTH, 401)
# the client timed out while a proxy (or a busy server) still holds the import
TIMEOUT_LANDS_LATE = Fault(FailureKind.RETRY, None, maybe_sent=True, lands_late=True)


def too_many_requests(retry_after: float) -> Fault:
    """A 429 whose ``Retry-After`` asks for ``retry_after`` seconds."""
    return Fault(FailureKind.RETRY, 429, retry_after=retry_after)


@dataclass
class Project:
    id: int
    title: str
    label_config: str
    tasks: list[dict[str, Any]] = field(default_factory=list)  # each with its "id"


@dataclass(frozen=True)
class Import:
    """One import request as the server saw it."""

    project_id: int
    run_ids: tuple[str, ...]
    failed: bool


class FakeLabelStudio:
    """One fake server: its projects, the failures queued for it, and what it was asked."""

    def __init__(self) -> None:
        self.projects: dict[int, Project] = {}
        self.imports: list[Import] = []
        self.lookups: list[tuple[int, tuple[str, ...]]] = []  # exactly-once checks
        self.copy_lookups: list[tuple[int, tuple[str, ...]]] = []  # duplicate checks
        self.deleted: list[int] = []  # ids of the tasks deleted through the API
        self.keys: list[str] = []  # the key of every client made
        self.down = False  # every request fails as when nothing listens on the port
        self._faults: deque[Fault | None] = deque()
        self._refused: set[str] = set()
        self._late: list[tuple[int, list[dict[str, Any]]]] = []  # held imports, not stored yet
        self._gate: threading.Event | None = None  # imports wait for it (hold_imports)
        self.in_flight = 0  # imports waiting at the gate
        self._ids = iter(range(1, 10**9))
        self._lock = threading.Lock()  # the sender thread and the test both read

    # -- cues ------------------------------------------------------------------------

    def fail_imports(self, *faults: Fault | None) -> None:
        """The next imports fail with ``faults``, one each, in order (None: that one succeeds)."""
        with self._lock:
            self._faults.extend(faults)

    def refuse(self, run_id: str) -> None:
        """Any import holding the task of ``run_id`` is refused with a 400."""
        with self._lock:
            self._refused.add(run_id)

    def hold_imports(self) -> threading.Event:
        """Imports from now on stay in flight until the returned event is set; then each
        is stored and answered as usual."""
        gate = self._gate = threading.Event()
        return gate

    def land_late(self) -> int:
        """Store the tasks of every import held so far (``lands_late``), as the slow server
        finally does; returns how many tasks were stored."""
        with self._lock:
            held, self._late = self._late, []
            for project_id, tasks in held:
                project = self.projects[project_id]
                project.tasks.extend({**t, "id": next(self._ids)} for t in tasks)
            return sum(len(tasks) for _, tasks in held)

    def annotate(self, run_id: str, copy: int = 0) -> int:
        """Give the ``copy``-th stored task of ``run_id`` (in id order) an annotation, as an
        annotator would; returns its task id."""
        with self._lock:
            tasks = [
                t
                for p in self.projects.values()
                for t in sorted(p.tasks, key=lambda t: int(t["id"]))
                if t["data"]["run_id"] == run_id
            ]
            task = tasks[copy]
            task["annotations"] = [*task.get("annotations", []), {"result": []}]
            return int(task["id"])

    def connect(self, url: str, api_key: str, timeout: float) -> Client:
        """The sender's ``Connect``: a client of this server."""
        self.keys.append(api_key)
        return FakeClient(self, url)

    # -- what the server holds -----------------------------------------------------

    def run_ids(self, title: str | None = None) -> list[str]:
        """``data.run_id`` of every task (of the project titled ``title``), duplicates kept."""
        with self._lock:
            return [
                task["data"]["run_id"]
                for project in self.projects.values()
                if title is None or project.title == title
                for task in project.tasks
            ]

    # -- the endpoints, called by FakeClient ----------------------------------------

    def _reach(self, url: str) -> None:
        if self.down:
            raise DeliveryFailure(
                FailureKind.RETRY,
                f"cannot connect to Label Studio at {url}: connection refused (the test's cue)",
                url=url,
            )

    def _import(self, url: str, project_id: int, bodies: Sequence[bytes]) -> int:
        self._reach(url)
        gate = self._gate
        if gate is not None:
            with self._lock:
                self.in_flight += 1
            gate.wait()
        tasks = [json.loads(body) for body in bodies]
        run_ids = tuple(t["data"]["run_id"] for t in tasks)
        with self._lock:
            project = self._project(url, project_id)
            if self._refused.intersection(run_ids):
                self.imports.append(Import(project_id, run_ids, failed=True))
                raise Fault(FailureKind.REJECTED, 400).failure(url)
            fault = self._faults.popleft() if self._faults else None
            self.imports.append(Import(project_id, run_ids, failed=fault is not None))
            if fault is None or fault.arrived:
                project.tasks.extend({**t, "id": next(self._ids)} for t in tasks)
            elif fault.lands_late:
                self._late.append((project_id, tasks))
            if fault is not None:
                raise fault.failure(url)
            return len(tasks)

    def _project(self, url: str, project_id: int) -> Project:
        project = self.projects.get(project_id)
        if project is None:
            raise DeliveryFailure(
                FailureKind.NOT_FOUND,
                f"Label Studio at {url} has no project id {project_id}",
                status=404,
                url=url,
            )
        return project


class FakeClient:
    """A :class:`~lstrace._client.Client` of a :class:`FakeLabelStudio`."""

    def __init__(self, server: FakeLabelStudio, url: str) -> None:
        self.server = server
        self.url = url

    def projects_titled(self, title: str) -> list[int]:
        self.server._reach(self.url)
        with self.server._lock:
            return sorted(p.id for p in self.server.projects.values() if p.title == title)

    def create_project(self, title: str, label_config: str) -> int:
        self.server._reach(self.url)
        with self.server._lock:
            project_id = next(self.server._ids)
            self.server.projects[project_id] = Project(project_id, title, label_config)
            return project_id

    def delete_project(self, project_id: int) -> None:
        self.server._reach(self.url)
        with self.server._lock:
            self.server.projects.pop(project_id, None)

    def project(self, project_id: int) -> ProjectInfo:
        self.server._reach(self.url)
        with self.server._lock:
            project = self.server._project(self.url, project_id)
            return ProjectInfo(
                project.id,
                project.title,
                tasks=len(project.tasks),
                annotated_tasks=0,
                annotations=0,
                skipped=0,
                parsed_config=parsed_label_config(project.label_config),
            )

    def import_tasks(self, project_id: int, tasks: Sequence[bytes]) -> int:
        return self.server._import(self.url, project_id, tasks)

    def existing_run_ids(self, project_id: int, run_ids: Iterable[str]) -> set[str]:
        self.server._reach(self.url)
        wanted = tuple(run_ids)
        with self.server._lock:
            self.server.lookups.append((project_id, wanted))
            project = self.server._project(self.url, project_id)
            return {t["data"]["run_id"] for t in project.tasks} & set(wanted)

    def copies(self, project_id: int, run_ids: Iterable[str]) -> list[TaskCopy]:
        self.server._reach(self.url)
        wanted = tuple(run_ids)
        with self.server._lock:
            self.server.copy_lookups.append((project_id, wanted))
            project = self.server._project(self.url, project_id)
            return [
                TaskCopy(int(t["id"]), t["data"]["run_id"], len(t.get("annotations", [])))
                for t in project.tasks
                if t["data"]["run_id"] in wanted
            ]

    def delete_tasks(self, project_id: int, task_ids: Sequence[int]) -> None:
        self.server._reach(self.url)
        with self.server._lock:
            project = self.server._project(self.url, project_id)
            gone = set(task_ids)
            self.server.deleted.extend(t["id"] for t in project.tasks if t["id"] in gone)
            project.tasks = [t for t in project.tasks if t["id"] not in gone]

    def close(self) -> None:
        pass


def parsed_label_config(xml: str) -> dict[str, Any]:
    """The part of Label Studio's ``parsed_label_config`` lstrace reads, for ``xml``."""
    # a default config's target is known without the SDK's (slow to import) validator
    modes = {config: mode for mode, config in DEFAULT_CONFIGS.items()}
    target = default_target(modes[xml]) if xml in modes else target_from_xml(xml)
    if isinstance(target, PairTarget):
        return {
            target.name: {
                "type": "Pairwise",
                "to_name": ["answer_a", "answer_b"],
                "inputs": [
                    {"type": "Text", "value": target.left_key},
                    {"type": "Text", "value": target.right_key},
                ],
            }
        }
    return {
        target.from_name: {
            "type": "TextArea",
            "to_name": [target.to_name],
            "inputs": [{"type": target.object_type, "value": target.value_key}],
        }
    }
