"""Export logic that needs no server: reading configs and annotations, picking among several
annotations, parsing dates, and how the writers turn reviews into rows."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections import Counter
from typing import Any

import pytest

from lstrace._errors import BadRequest
from lstrace._export.annotations import (
    Controls,
    Filters,
    Review,
    Tally,
    parse_since,
    pick,
    read,
    reviews,
)
from lstrace._export.formats import PreferenceWriter, RatingsCsvWriter, SftWriter

UTC = dt.timezone.utc


def control(kind: str, to: str = "prompt", obj: str = "Text", key: str = "prompt") -> Any:
    """One entry of a ``parsed_label_config`` as Label Studio returns it."""
    return {
        "type": kind,
        "to_name": [to],
        "inputs": [{"type": obj, "valueType": None, "value": key}],
        "labels": [],
        "labels_attrs": {},
    }


CUSTOM = {
    "score": control("Rating"),
    "answer": control("TextArea"),
    "rating": control("Rating"),
    "verdict": control("Choices"),
    "note": control("TextArea"),
}


def review(**fields: Any) -> Review:
    base: dict[str, Any] = {
        "task_id": 1,
        "run_id": "r",
        "model": "m",
        "prompt": "p",
        "original": "model says",
        "text": None,
        "chosen": None,
        "rejected": None,
        "rating": None,
        "ratings": {},
        "choices": {},
        "texts": {},
        "annotator": "a@x",
        "skipped": False,
    }
    return Review(**{**base, **fields})


def test_controls_are_found_by_tag_type_in_config_order() -> None:
    """The first TextArea on the prompt holds the response; other TextAreas are extra texts;
    a Rating named ``rating`` is the rating even when it is not the first."""
    controls = Controls.from_parsed(CUSTOM, "project 'x'")
    assert (controls.response, controls.prompt_key) == ("answer", "prompt")
    assert controls.ratings == ("score", "rating") and controls.primary_rating == "rating"
    assert controls.choices == ("verdict",) and controls.texts == ("note",)


def test_a_config_without_textarea_or_pairwise_is_refused() -> None:
    """No TextArea (and no Pairwise): BadRequest naming the project and the tag to add."""
    with pytest.raises(BadRequest, match=r"project 'x' has no TextArea.*<TextArea name="):
        Controls.from_parsed({"verdict": control("Choices")}, "project 'x'")


def test_a_pairwise_config_reads_the_pick_as_a_choice() -> None:
    """A Pairwise control makes the picked side's data key a choice, and fills chosen and
    rejected with the two responses."""
    parsed = {
        "pick": {
            "type": "Pairwise",
            "to_name": ["a", "b"],
            "inputs": [
                {"type": "Text", "value": "answer_a"},
                {"type": "Text", "value": "answer_b"},
            ],
        }
    }
    controls = Controls.from_parsed(parsed, "p")
    task = {"id": 3, "data": {"prompt": "q", "answer_a": "A!", "answer_b": "B!"}}
    item = {"from_name": "pick", "type": "pairwise", "value": {"selected": "right"}}
    got = read(task, {"result": [item]}, controls, None, {}, Tally())
    assert (got.chosen, got.rejected, got.final) == ("B!", "A!", "B!")
    assert got.choices == {"pick": ["answer_b"]}


def test_result_items_are_read_by_type_and_odd_ones_counted() -> None:
    """Several texts in the TextArea join with newlines; items of other types or with a
    malformed value are counted as ignored, never raised."""
    controls = Controls.from_parsed(CUSTOM, "p")
    result = [
        {"from_name": "answer", "type": "textarea", "value": {"text": ["one", "two"]}},
        {"from_name": "score", "type": "rating", "value": {"rating": 2}},
        {"from_name": "rating", "type": "rating", "value": {"rating": "five"}},
        {"from_name": "verdict", "type": "choices", "value": {"choices": ["ok"]}},
        {"from_name": "note", "type": "textarea", "value": {"text": ["meh"]}},
        {"from_name": "box", "type": "rectanglelabels", "value": {"x": 1}},
        "not an item",
    ]
    tally = Tally()
    got = read({"id": 1, "data": {"prompt": "q"}}, {"result": result}, controls, "o", {}, tally)
    assert got.text == "one\ntwo" and got.edited and got.corrected == "one\ntwo"
    assert (got.rating, got.ratings) == (2, {"score": 2})  # "rating" was malformed
    assert (got.choices, got.texts) == ({"verdict": ["ok"]}, {"note": "meh"})
    assert tally.ignored_types == Counter({"rating": 1, "rectanglelabels": 1, "untyped": 1})


def test_policies_order_annotations_by_time_not_by_text() -> None:
    """Timestamps with and without fractions of a second compare as times; ``latest`` uses
    the update time, ``first`` and ``all`` the creation time, the id breaks ties."""
    a = {"id": 1, "created_at": "2024-05-01T10:00:00.500000Z", "updated_at": "2024-05-03T09:00:00Z"}
    b = {"id": 2, "created_at": "2024-05-01T10:00:00Z", "updated_at": "2024-05-02T00:00:00.1Z"}
    c = {"id": 3, "created_at": "2024-05-01T10:00:00Z", "updated_at": "2024-05-01T11:00:00Z"}
    assert pick([a, b, c], "latest") == [a]
    assert pick([a, b, c], "first") == [b]
    assert pick([a, b, c], "all") == [b, c, a]
    assert pick([], "latest") == []


def test_skips_go_first_then_the_policy_then_since_and_min_rating() -> None:
    """The latest submitted annotation is picked past a later skip; since and min_rating then
    judge only the picked one, and every drop is counted."""
    controls = Controls.from_parsed(CUSTOM, "p")
    stars = {"from_name": "rating", "type": "rating"}

    def annotation(n: int, day: int, rated: int, **extra: Any) -> dict[str, Any]:
        when = f"2024-05-0{day}T00:00:00Z"
        result = [{**stars, "value": {"rating": rated}}]
        return {"id": n, "created_at": when, "updated_at": when, "result": result, **extra}

    task = {
        "id": 9,
        "data": {"prompt": "q"},
        "annotations": [
            annotation(1, 1, 5),
            annotation(2, 2, 2),
            annotation(3, 3, 4, was_cancelled=True),
        ],
    }
    tally = Tally()
    [got] = reviews(task, controls, Filters(), {}, tally)
    assert got.rating == 2 and tally.dropped == Counter({"skipped": 1, "superseded": 1})
    since = dt.datetime(2024, 5, 3, tzinfo=UTC)
    assert reviews(task, controls, Filters(since=since), {}, tally) == []
    assert reviews(task, controls, Filters(min_rating=3), {}, tally) == []
    assert reviews(task, controls, Filters(policy="first", min_rating=3), {}, tally)[0].rating == 5
    assert tally.dropped["before_since"] == tally.dropped["below_min_rating"] == 1


def test_since_accepts_dates_times_and_offsets() -> None:
    """A date means midnight UTC, a naive time is UTC, an offset is kept; anything else is a
    BadRequest showing the expected form."""
    assert parse_since("2024-05-01") == dt.datetime(2024, 5, 1, tzinfo=UTC)
    assert parse_since("2024-05-01T12:30:00") == dt.datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    plus_two = parse_since("2024-05-01T12:30:00+02:00")
    assert plus_two == dt.datetime(2024, 5, 1, 10, 30, tzinfo=UTC)
    assert parse_since("2024-05-01T10:30:00Z") == plus_two
    assert parse_since(dt.date(2024, 5, 1)) == dt.datetime(2024, 5, 1, tzinfo=UTC)
    assert parse_since(None) is None
    with pytest.raises(BadRequest, match="like 2024-05-01"):
        parse_since("yesterday")


def test_rating_pairs_compare_distinct_answers_of_one_prompt() -> None:
    """Answers rated twice count with their mean; equal means and identical answers make
    no pair; prompts come out in the order they were first seen."""
    out = io.StringIO()
    writer = PreferenceWriter(out)
    for prompt, answer, stars in [
        ("later", "x", 5),
        ("later", "y", 1),
        ("q", "good", 5),
        ("q", "good", 3),  # mean 4
        ("q", "fine", 4),  # tie with "good": no pair
        ("q", "bad", 1),
        ("alone", "only", 5),
    ]:
        assert writer.write(review(prompt=prompt, original=answer, rating=stars)) == 0
    assert writer.finish() == 3
    pairs = [
        (r["prompt"], r["chosen"], r["rejected"])
        for r in map(json.loads, out.getvalue().splitlines())
    ]
    assert pairs == [("later", "x", "y"), ("q", "good", "bad"), ("q", "fine", "bad")]


def test_writers_leave_out_what_they_cannot_use() -> None:
    """sft drops empty responses and missing prompts (with reasons); a CSV with no row has
    no header either, so an empty export writes nothing."""
    out = io.StringIO()
    sft = SftWriter(out)
    assert sft.write(review(text="")) == 0
    assert sft.write(review(prompt=None)) == 0
    assert sft.dropped == Counter({"empty_response": 1, "no_prompt": 1})
    assert out.getvalue() == ""
    controls = Controls.from_parsed(CUSTOM, "p")
    RatingsCsvWriter(out, controls).finish()
    assert out.getvalue() == ""


def test_rating_pairs_per_prompt_are_capped_best_answer_first() -> None:
    """A prompt answered many times gives at most max_pairs pairs: the best-rated answer
    against each worse one, in rank order."""
    out = io.StringIO()
    writer = PreferenceWriter(out, max_pairs=2)
    for answer, stars in [("c", 3), ("a", 5), ("d", 1), ("b", 4)]:
        writer.write(review(prompt="same", original=answer, rating=stars))
    assert writer.finish() == 2
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["chosen"], r["rejected"]) for r in rows] == [("a", "b"), ("a", "c")]
