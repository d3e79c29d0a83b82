"""One task's annotations, read by tag type, filtered and picked per the annotator policy.

Any label config works as long as it has a TextArea pointing at the prompt:
that TextArea holds the response (the model's as a prediction, the
annotator's edit in the annotation); every ``Rating``, ``Choices`` and other
``TextArea`` result is kept under its control's name. Result items of other
types are counted and left out.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from lstrace._errors import BadRequest
from lstrace._export import toolcalls, traces
from lstrace._labelconfig import PairTarget, target_from_parsed

Policy = Literal["latest", "first", "all"]
POLICIES: tuple[str, ...] = ("latest", "first", "all")

Prompt = str | list[dict[str, Any]]


@dataclass(frozen=True)
class Controls:
    """The tags of a project's label config that an export reads, in config order."""

    response: str | None  # the TextArea holding the response (None: a pairwise config)
    prompt_key: str  # the data key of the prompt
    ratings: tuple[str, ...]
    choices: tuple[str, ...]
    texts: tuple[str, ...]  # TextAreas other than the response's
    pair: PairTarget | None = None  # a Pairwise control over two responses

    @classmethod
    def from_parsed(cls, parsed: Mapping[str, Any], project: str) -> Controls:
        """Read a ``parsed_label_config``; raises :class:`BadRequest` without a TextArea."""
        target = target_from_parsed(parsed)
        if target is None:
            raise BadRequest(
                f"{project} has no TextArea pointing at the prompt, so it holds no responses "
                "to export; add one in Settings > Labeling Interface, e.g. "
                '<TextArea name="response" toName="prompt" editable="true"/>.'
            )

        def named(kind: str) -> tuple[str, ...]:
            return tuple(name for name, tag in parsed.items() if tag.get("type") == kind)

        if isinstance(target, PairTarget):
            choices = (*named("Choices"), target.name)  # the side picked reads as a choice
            return cls(None, "prompt", named("Rating"), choices, named("TextArea"), target)
        texts = tuple(n for n in named("TextArea") if n != target.from_name)
        return cls(target.from_name, target.value_key, named("Rating"), named("Choices"), texts)

    @property
    def primary_rating(self) -> str | None:
        """The Rating read as *the* rating: one named ``rating``, else the first."""
        if "rating" in self.ratings:
            return "rating"
        return self.ratings[0] if self.ratings else None


@dataclass(frozen=True)
class PairSides:
    """Both answers of a pairwise task, the models that gave them, and the side picked."""

    response_a: str | None
    response_b: str | None
    model_a: str | None
    model_b: str | None
    winner: Literal["a", "b"] | None  # None: the annotation made no pick

    @property
    def picked_model(self) -> str | None:
        return {"a": self.model_a, "b": self.model_b, None: None}[self.winner]


@dataclass(frozen=True)
class Review:
    """One annotation of one task, with what the model said and what the annotator did."""

    task_id: int
    run_id: str | None
    model: str | None
    prompt: Prompt | None
    original: str | None  # the model's response (the task's prediction)
    text: str | None  # the annotator's text in the response TextArea, if any
    chosen: str | None  # pairwise: the response the annotator picked
    rejected: str | None  # pairwise: the other one
    rating: float | None
    ratings: dict[str, float]
    choices: dict[str, list[str]]
    texts: dict[str, str]
    annotator: str
    skipped: bool
    sides: PairSides | None = None  # pairwise projects only
    # chat mode: the model's response in OpenAI's tool-calling layout, when it called tools
    original_message: Mapping[str, Any] | None = None
    # trace mode: the tools offered (None for other tasks) and facts for ratings rows
    tools: list[dict[str, Any]] | None = None
    trace: Mapping[str, Any] | None = None

    @property
    def final(self) -> str | None:
        """The human-approved response: the annotator's text, else the one picked of a
        pair, else the accepted prediction."""
        for candidate in (self.text, self.chosen):
            if candidate is not None:
                return candidate
        return self.original

    @property
    def edited(self) -> bool:
        return self.text is not None and self.original is not None and self.text != self.original

    @property
    def corrected(self) -> str | None:
        """The annotator's text when it differs from the model's, else None."""
        return self.text if self.edited else None


@dataclass
class Tally:
    """What an export read and why things were left out; explains an empty export."""

    tasks: int = 0
    annotations: int = 0
    used: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    ignored_types: Counter[str] = field(default_factory=Counter)

    def add(self, other: Tally) -> None:
        """Count what ``other`` counted too (one task's tally into the export's)."""
        self.tasks += other.tasks
        self.annotations += other.annotations
        self.used += other.used
        self.dropped.update(other.dropped)
        self.ignored_types.update(other.ignored_types)


@dataclass(frozen=True)
class Filters:
    """Which annotations an export keeps."""

    policy: str = "latest"
    include_skipped: bool = False
    since: dt.datetime | None = None
    min_rating: float | None = None


def reviews(
    task: Mapping[str, Any],
    controls: Controls,
    filters: Filters,
    users: Mapping[int, str],
    tally: Tally,
) -> list[Review]:
    """The task's annotations that pass ``filters``, as reviews, oldest first.

    Skipped annotations are set aside first (unless included), then the policy
    picks among the rest, then ``since`` and ``min_rating`` apply to what was picked.
    """
    tally.tasks += 1
    annotations = list(task.get("annotations") or [])
    tally.annotations += len(annotations)
    kept = [a for a in annotations if filters.include_skipped or not a.get("was_cancelled")]
    tally.dropped["skipped"] += len(annotations) - len(kept)
    picked = pick(kept, filters.policy)
    tally.dropped["superseded"] += len(kept) - len(picked)
    original = prediction_text(task.get("predictions") or [], controls.response)
    out = []
    for annotation in picked:
        if filters.since is not None and _time(annotation, "updated_at") < filters.since:
            tally.dropped["before_since"] += 1
            continue
        review = read(task, annotation, controls, original, users, tally)
        if filters.min_rating is not None and (
            review.rating is None or review.rating < filters.min_rating
        ):
            tally.dropped["below_min_rating"] += 1
            continue
        out.append(review)
    return out


def review_task(
    task: Mapping[str, Any], controls: Controls, filters: Filters, users: Mapping[int, str]
) -> tuple[str, list[Review], Tally]:
    """One task's run id, the reviews its annotations give, and what reading it counted."""
    tally = Tally()
    found = reviews(task, controls, filters, users, tally)
    return str((task.get("data") or {}).get("run_id") or ""), found, tally


def pick(annotations: Sequence[Mapping[str, Any]], policy: str) -> list[Mapping[str, Any]]:
    """``latest``: the last updated; ``first``: the first created; ``all``: every one."""
    if policy == "all":
        return sorted(annotations, key=lambda a: (_time(a, "created_at"), a.get("id") or 0))
    if not annotations:
        return []
    if policy == "first":
        return [min(annotations, key=lambda a: (_time(a, "created_at"), a.get("id") or 0))]
    return [max(annotations, key=lambda a: (_time(a, "updated_at"), a.get("id") or 0))]


def read(
    task: Mapping[str, Any],
    annotation: Mapping[str, Any],
    controls: Controls,
    original: str | None,
    users: Mapping[int, str],
    tally: Tally,
) -> Review:
    """Map an annotation's result items by type onto a :class:`Review`."""
    data = task.get("data") or {}
    marks = _Marks()
    for item in annotation.get("result") or []:
        kind = marks.add(item, controls, data)
        if kind is not None:
            tally.ignored_types[kind or "untyped"] += 1
    return Review(
        task_id=int(task["id"]),
        run_id=_str_or_none(data.get("run_id")),
        model=_str_or_none(data.get("model")),
        prompt=(
            traces.messages(data)
            if traces.is_trace(data)
            else as_prompt(data.get(controls.prompt_key))
        ),
        original=original,
        text=marks.text,
        chosen=marks.pair[0] if marks.pair else None,
        rejected=marks.pair[1] if marks.pair else None,
        rating=_primary(marks.ratings, controls.primary_rating),
        ratings=marks.ratings,
        choices=marks.choices,
        texts=marks.texts,
        annotator=_annotator(annotation.get("completed_by"), users),
        skipped=bool(annotation.get("was_cancelled")),
        sides=_sides_of(controls.pair, data, marks.winner) if controls.pair else None,
        original_message=_mapping_or_none(data.get("response_message")),
        tools=traces.tools(data) if traces.is_trace(data) else None,
        trace=traces.facts(data) if traces.is_trace(data) else None,
    )


def _sides_of(
    pair: PairTarget, data: Mapping[str, Any], winner: Literal["a", "b"] | None
) -> PairSides:
    """lstrace's pairwise tasks name the models in ``model_a``/``model_b``; other tasks may not."""
    return PairSides(
        response_a=_str_or_none(data.get(pair.left_key)),
        response_b=_str_or_none(data.get(pair.right_key)),
        model_a=_str_or_none(data.get("model_a")),
        model_b=_str_or_none(data.get("model_b")),
        winner=winner,
    )


@dataclass
class _Marks:
    """What one annotation's result items say, by tag type."""

    text: str | None = None
    pair: tuple[str, str] | None = None  # (picked response, other response)
    winner: Literal["a", "b"] | None = None  # the side picked
    ratings: dict[str, float] = field(default_factory=dict)
    choices: dict[str, list[str]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)

    def add(self, item: Any, controls: Controls, data: Mapping[str, Any]) -> str | None:
        """Take one result item; returns its type when it is not one an export reads."""
        kind, name, value = _parts(item)
        if kind == "textarea" and isinstance(value.get("text"), list):
            joined = "\n".join(str(t) for t in value["text"])
            if name == controls.response:
                self.text = joined
            else:
                self.texts[name] = joined
        elif kind == "rating" and _is_number(value.get("rating")):
            self.ratings[name] = value["rating"]
        elif kind == "choices" and isinstance(value.get("choices"), list):
            self.choices[name] = [str(c) for c in value["choices"]]
        elif kind == "pairwise" and controls.pair and value.get("selected") in ("left", "right"):
            left = value["selected"] == "left"
            picked, other = _sides(controls.pair, left=left)
            self.choices[name] = [picked]
            self.winner = "a" if left else "b"
            self.pair = (str(data.get(picked) or ""), str(data.get(other) or ""))
        else:
            return kind
        return None


def prediction_text(predictions: Iterable[Mapping[str, Any]], from_name: str | None) -> str | None:
    """The first prediction's text in the response TextArea (what the model said)."""
    if from_name is None:
        return None
    for prediction in predictions:
        for item in prediction.get("result") or []:
            kind, name, value = _parts(item)
            if kind == "textarea" and name == from_name and isinstance(value.get("text"), list):
                return "\n".join(str(t) for t in value["text"])
    return None


def as_prompt(value: Any) -> Prompt | None:
    """A prompt string, or a list of messages (chat mode): ``{role, content}``, or the
    tool-calling layout for turns that call tools or answer one."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(m, Mapping) for m in value):
        return [toolcalls.message(m) for m in value]
    return str(value)


def parse_since(value: dt.datetime | dt.date | str | None) -> dt.datetime | None:
    """A timezone-aware instant; dates mean midnight, naive values mean UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise BadRequest(
                f"since must be a date or time like 2024-05-01 or 2024-05-01T12:00:00+02:00, "
                f"not {value!r}."
            ) from None
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _parts(item: Any) -> tuple[str, str, Mapping[str, Any]]:
    if not isinstance(item, Mapping):
        return "", "", {}
    value = item.get("value")
    return (
        str(item.get("type") or ""),
        str(item.get("from_name") or ""),
        (value if isinstance(value, Mapping) else {}),
    )


def _sides(pair: PairTarget, *, left: bool) -> tuple[str, str]:
    """Data keys of the picked response and of the other one."""
    return (pair.left_key, pair.right_key) if left else (pair.right_key, pair.left_key)


def _primary(ratings: Mapping[str, float], name: str | None) -> float | None:
    if name is not None and name in ratings:
        return ratings[name]
    return next(iter(ratings.values()), None)


def _annotator(user_id: Any, users: Mapping[int, str]) -> str:
    if isinstance(user_id, Mapping):  # some servers expand the user
        return str(user_id.get("email") or user_id.get("id") or "unknown")
    if isinstance(user_id, int):
        return users.get(user_id, f"user {user_id}")
    return "unknown"


def _time(annotation: Mapping[str, Any], key: str) -> dt.datetime:
    raw = annotation.get(key) or annotation.get("created_at")
    try:
        parsed = dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _mapping_or_none(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) and value else None


def _str_or_none(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
