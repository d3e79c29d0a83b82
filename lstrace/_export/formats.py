"""The export formats: each writer takes reviews one at a time and writes rows as it goes.

- ``sft``: ``{"prompt", "completion"}`` (prompt mode) or ``{"messages": [...]}``
  ending with the approved assistant turn (chat mode).
- ``preference``: TRL's ``{"prompt", "chosen", "rejected"}``, standard or
  conversational. An edit is chosen over the model's response; among the
  responses to one prompt, a higher-rated one over a lower-rated one.
- ``ratings``: one row per annotation, JSON lines or CSV.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from typing import Any, Protocol, TextIO

from lstrace._export import toolcalls, traces
from lstrace._export.annotations import Controls, Prompt, Review

FORMATS: tuple[str, ...] = ("sft", "preference", "ratings")
MAX_PAIRS_PER_PROMPT = 100
# Rating pairs of one prompt come from its best-rated answers: a prompt shared by every
# call (a fixed template) must neither load all its answers nor square their number.
_RANKED_LIMIT = 1_000


class Writer(Protocol):
    """Writes rows for reviews; ``dropped`` says why a review gave no row."""

    dropped: Counter[str]

    def write(self, review: Review) -> int:
        """Write the rows of one review now; returns how many."""
        ...

    def finish(self) -> int:
        """Write what needs every review first; returns how many rows."""
        ...


def make_writer(
    fmt: str,
    out: TextIO,
    controls: Controls,
    *,
    as_csv: bool,
    max_pairs_per_prompt: int = MAX_PAIRS_PER_PROMPT,
) -> Writer:
    """The writer for ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "sft":
        return SftWriter(out)
    if fmt == "preference":
        return PreferenceWriter(out, max_pairs_per_prompt)
    if as_csv:
        return RatingsCsvWriter(out, controls)
    return RatingsJsonWriter(out)


def _line(out: TextIO, row: dict[str, Any]) -> None:
    out.write(json.dumps(row, ensure_ascii=False) + "\n")


def _assistant(text: str, review: Review | None = None) -> list[dict[str, Any]]:
    """The assistant turn for ``text``, tool calls structured (see :mod:`toolcalls`)."""
    if review is None:
        return [toolcalls.assistant(text)]
    return [toolcalls.assistant(text, review.original, review.original_message)]


class SftWriter:
    """Prompt and approved completion, in TRL's prompt-completion or messages layout."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.dropped: Counter[str] = Counter()

    def write(self, review: Review) -> int:
        completion = review.final
        if review.prompt is None:
            self.dropped["no_prompt"] += 1
            return 0
        if not completion:
            self.dropped["empty_response"] += 1
            return 0
        if isinstance(review.prompt, list):
            row: dict[str, Any] = {"messages": [*review.prompt, *_assistant(completion, review)]}
            if review.tools is not None:  # trace mode: TRL's tool-calling layout
                row["tools"] = review.tools
            _line(self.out, row)
        else:
            _line(self.out, {"prompt": review.prompt, "completion": completion})
        return 1

    def finish(self) -> int:
        return 0


class PreferenceWriter:
    """Edit pairs as they come; rating pairs at the end, grouped by prompt in a temp database.

    The temporary SQLite database lives on disk, so grouping a project's
    ratings by prompt does not hold them in memory. Each prompt gives at most
    ``max_pairs`` rating pairs, the best-rated answer against each worse one first.
    """

    def __init__(self, out: TextIO, max_pairs: int = MAX_PAIRS_PER_PROMPT) -> None:
        self.out = out
        self.max_pairs = max_pairs
        self.dropped: Counter[str] = Counter()
        self._seq = 0
        self._db = sqlite3.connect("")  # "": a private temporary on-disk database
        self._db.executescript(
            "CREATE TABLE prompts (key TEXT PRIMARY KEY, prompt TEXT NOT NULL, tools TEXT);"
            "CREATE TABLE rated (key TEXT, response TEXT, rating REAL, seq INTEGER);"
            "CREATE INDEX rated_key ON rated (key, response);"
        )

    def write(self, review: Review) -> int:
        if review.prompt is None:
            self.dropped["no_prompt"] += 1
            return 0
        written = 0
        if review.edited and review.text and review.original is not None:
            self._pair(review.prompt, review.text, review.original, review)
            written = 1
        elif review.chosen is not None and review.rejected is not None:
            # A pick is a judgement even between two identical answers: kept, as picked.
            self._pair(review.prompt, review.chosen, review.rejected)
            written = 1
        rated = review.original if review.original is not None else review.final
        if review.rating is not None and rated:
            self._remember(review.prompt, rated, review.rating, review.tools)
        elif not written:
            self.dropped["neither_edited_nor_rated"] += 1
        return written

    def finish(self) -> int:
        written = 0
        try:
            for key, prompt, tools in self._groups():
                for better, worse in self._pairs(self._ranked(key)):
                    self._pair(prompt, better, worse, tools=tools)
                    written += 1
        finally:
            self._db.close()
        if written == 0 and self._seq:
            self.dropped["rated_without_pair"] += self._seq
        return written

    def _pair(
        self,
        prompt: Prompt,
        chosen: str,
        rejected: str,
        review: Review | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> None:
        row: dict[str, Any]
        if isinstance(prompt, list):
            row = {
                "prompt": prompt,
                "chosen": _assistant(chosen, review),
                "rejected": _assistant(rejected, review),
            }
            if review is not None and review.tools is not None:
                tools = review.tools
            if tools is not None:  # trace mode: TRL's tool-calling layout
                row["tools"] = tools
        else:
            row = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
        _line(self.out, row)

    def _remember(
        self, prompt: Prompt, response: str, rating: float, tools: list[dict[str, Any]] | None
    ) -> None:
        """One rated answer, grouped by its prompt and (trace mode) the tools offered."""
        text = json.dumps(prompt, ensure_ascii=False)
        canonical = json.dumps([prompt, tools], ensure_ascii=False, sort_keys=True)
        key = hashlib.sha256(canonical.encode()).hexdigest()
        offered = json.dumps(tools, ensure_ascii=False) if tools is not None else None
        self._seq += 1
        self._db.execute("INSERT OR IGNORE INTO prompts VALUES (?, ?, ?)", (key, text, offered))
        self._db.execute(
            "INSERT INTO rated VALUES (?, ?, ?, ?)", (key, response, rating, self._seq)
        )

    def _groups(self) -> Iterator[tuple[str, Prompt, list[dict[str, Any]] | None]]:
        """Prompts (with their tools) with at least two distinct rated responses, in
        first-seen order."""
        rows = self._db.execute(
            "SELECT r.key, p.prompt, p.tools FROM rated r JOIN prompts p ON p.key = r.key "
            "GROUP BY r.key HAVING COUNT(DISTINCT r.response) > 1 ORDER BY MIN(r.seq)"
        )
        for key, text, tools in rows:
            yield key, json.loads(text), json.loads(tools) if tools is not None else None

    def _pairs(self, ranked: list[tuple[str, float]]) -> Iterator[tuple[str, str]]:
        """(better, worse) answers, strictly better by rating, at most ``max_pairs``."""
        made = 0
        for i, (better, high) in enumerate(ranked):
            for worse, low in ranked[i + 1 :]:
                if made == self.max_pairs:
                    return
                if high > low:
                    made += 1
                    yield better, worse

    def _ranked(self, key: str) -> list[tuple[str, float]]:
        """Distinct responses to one prompt, best first (a response rated twice: the mean)."""
        rows = self._db.execute(
            "SELECT response, AVG(rating) FROM rated WHERE key = ? GROUP BY response "
            "ORDER BY AVG(rating) DESC, MIN(seq) LIMIT ?",
            (key, _RANKED_LIMIT),
        )
        return [(str(response), float(mean)) for response, mean in rows]


_SIDE_COLUMNS = ("winner", "response_a", "response_b", "model_a", "model_b")


def _rating_row(review: Review) -> dict[str, Any]:
    row: dict[str, Any] = {
        "task_id": review.task_id,
        "run_id": review.run_id,
        "model": review.model,
        "annotator": review.annotator,
        "skipped": review.skipped,
        "prompt": review.prompt,
        "response": review.original,
    }
    if review.sides is not None:  # pairwise: the picked answer is the response
        row["response"] = review.chosen
        row["model"] = review.sides.picked_model or review.model
        row.update({name: getattr(review.sides, name) for name in _SIDE_COLUMNS})
    row.update(
        {
            "corrected_response": review.corrected,
            "rating": review.rating,
            "ratings": review.ratings,
            "choices": review.choices,
            "texts": review.texts,
        }
    )
    if review.trace is not None:  # trace mode: steps, tools used, the step marked wrong
        row.update(_trace_facts(review))
    return row


def _trace_facts(review: Review) -> dict[str, Any]:
    return {**(review.trace or {}), "wrong_step": traces.wrong_step(review.choices)}


class RatingsJsonWriter:
    """One JSON line per annotation."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.dropped: Counter[str] = Counter()

    def write(self, review: Review) -> int:
        _line(self.out, _rating_row(review))
        return 1

    def finish(self) -> int:
        return 0


class RatingsCsvWriter:
    """One CSV row per annotation; one column per Rating, Choices and extra TextArea control."""

    def __init__(self, out: TextIO, controls: Controls) -> None:
        self.dropped: Counter[str] = Counter()
        self._ratings = [n for n in controls.ratings if n != controls.primary_rating]
        self._choices = list(controls.choices)
        self._texts = list(controls.texts)
        base = ["task_id", "run_id", "model", "annotator", "skipped", "prompt", "response"]
        self._pairwise = controls.pair is not None
        self.columns = [
            *base,
            *(_SIDE_COLUMNS if self._pairwise else ()),
            "corrected_response",
            "rating",
            *(f"ratings.{n}" for n in self._ratings),
            *(f"choices.{n}" for n in self._choices),
            *(f"texts.{n}" for n in self._texts),
        ]
        self._csv = csv.writer(out, lineterminator="\n")
        self._started = False

    def write(self, review: Review) -> int:
        if not self._started:  # the header waits for a row: an empty export writes nothing
            self._csv.writerow(self.columns)
            self._started = True
        row = _rating_row(review)
        prompt = review.prompt
        self._csv.writerow(
            [
                review.task_id,
                review.run_id or "",
                row["model"] or "",
                review.annotator,
                "true" if review.skipped else "false",
                prompt if isinstance(prompt, str) or prompt is None else _json(prompt),
                row["response"] or "",
                *((row[name] or "") for name in (_SIDE_COLUMNS if self._pairwise else ())),
                review.corrected or "",
                _num(review.rating),
                *(_num(review.ratings.get(n)) for n in self._ratings),
                *("; ".join(review.choices.get(n, [])) for n in self._choices),
                *(review.texts.get(n, "") for n in self._texts),
            ]
        )
        return 1

    def finish(self) -> int:
        return 0


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _num(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)
