"""A prompt-mode project of annotated tasks in lstrace's layout, bulk-imported with their
annotations: what the export's live tests (tests/live/test_export_live.py) and benchmarks
(benchmarks/bench_export.py, benchmarks/export_paging.py) read.

Task ``i`` has prompt ``Question {i % GROUPS}?`` (prompts repeat, so ratings of one prompt
can be compared) and the model's answer ``Answer {i}.``; the first ``annotated`` tasks
carry one annotation: a skip for one task in ten (:func:`is_skipped`), else a rating
(:func:`expected_rating`), with an edit ``Edited answer {i}.`` for one in three
(:func:`is_edited`).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx

from lstrace._labelconfig import PROMPT_CONFIG

GROUPS = 499
IMPORT_BATCH = 1_000  # tasks per import request


def expected_rating(i: int) -> int:
    return (i * 7 // 3) % 5 + 1


def is_skipped(i: int) -> bool:
    return i % 10 == 0


def is_edited(i: int) -> bool:
    return i % 3 == 0


def textarea(text: str) -> dict[str, Any]:
    """A result on the response TextArea (a prediction's answer, or an annotator's edit)."""
    return {
        "from_name": "response",
        "to_name": "prompt",
        "type": "textarea",
        "value": {"text": [text]},
    }


def task_payload(i: int, annotated: int) -> dict[str, Any]:
    """Task ``i`` as lstrace builds it (data keys, prediction on ``response``), with its
    annotation when ``i < annotated``."""
    annotations: list[dict[str, Any]] = []
    if i < annotated and is_skipped(i):
        annotations = [{"result": [], "was_cancelled": True}]
    elif i < annotated:
        stars = {"from_name": "rating", "to_name": "prompt", "type": "rating"}
        result = [{**stars, "value": {"rating": expected_rating(i)}}]
        if is_edited(i):
            result.insert(0, textarea(f"Edited answer {i}."))
        annotations = [{"result": result, "lead_time": 3.0}]
    return {
        "data": {
            "prompt": f"Question {i % GROUPS}?",
            "run_id": str(UUID(int=100_000 + i)),
            "model": "FakeListLLM",
            "tags": "",
            "metadata": "{}",
        },
        "predictions": [{"model_version": "FakeListLLM", "result": [textarea(f"Answer {i}.")]}],
        "annotations": annotations,
    }


def seed_project(url: str, token: str, title: str, annotated: int, unannotated: int = 0) -> int:
    """Create the project and bulk-import its tasks, :data:`IMPORT_BATCH` per request;
    returns its id."""
    headers = {"Authorization": f"Token {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=3600) as http:
        answer = http.post("/api/projects/", json={"title": title, "label_config": PROMPT_CONFIG})
        answer.raise_for_status()
        project = int(answer.json()["id"])
        count = annotated + unannotated
        for start in range(0, count, IMPORT_BATCH):
            batch = [
                task_payload(i, annotated) for i in range(start, min(start + IMPORT_BATCH, count))
            ]
            http.post(f"/api/projects/{project}/import", json=batch).raise_for_status()
    return project
