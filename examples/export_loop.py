"""The loop back: capture calls, let people review them, export datasets.

1. Three answers are captured into a prompt-mode project.
2. Someone reviews them in Label Studio: corrects one answer, rates the others. Here the
   script stands in for that person through Label Studio's API, so that it runs alone;
   in real use you open the project and annotate.
3. `lstrace.export_project` writes what the reviews produced: an SFT file (prompt and
   approved completion) and a preference file (corrected answer chosen over the model's).

Run it with LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY set (see examples/README.md):

    python examples/export_loop.py            # or, for step 3 alone, the command line:
    lstrace export --project "lstrace example: export loop" --format sft -o sft.jsonl
"""

import json
import os
import tempfile
from pathlib import Path

from _shared import chat_model, where_to_look
from label_studio_sdk import LabelStudio

import lstrace
from lstrace.export import NothingToExport

PROJECT = "lstrace example: export loop"

model = chat_model(
    "The capital of Australia is Sydney.",
    "Water boils at 100 degrees Celsius at sea level.",
    "A haiku has three lines of five, seven and five syllables.",
)
QUESTIONS = (
    "What is the capital of Australia?",
    "At what temperature does water boil?",
    "What is a haiku?",
)


def review_like_a_person() -> None:
    """Stand in for an annotator: correct the wrong answer, rate the two good ones."""
    client = LabelStudio(
        base_url=os.environ.get("LABEL_STUDIO_URL", "http://localhost:8080"),
        api_key=os.environ["LABEL_STUDIO_API_KEY"],
    )
    [project] = [p for p in client.projects.list(title=PROJECT) if p.title == PROJECT]
    for task in client.tasks.list(project=project.id, fields="all"):
        [prediction] = task.predictions
        answer = prediction.result[0]["value"]["text"][0]
        corrected = answer.replace("Sydney", "Canberra")
        result = [_rating(5 if corrected == answer else 2)]
        if corrected != answer:
            result.append({**prediction.result[0], "value": {"text": [corrected]}})
        client.annotations.create(id=task.id, result=result)


def _rating(stars: int) -> dict[str, object]:
    return {
        "from_name": "rating",
        "to_name": "prompt",
        "type": "rating",
        "value": {"rating": stars},
    }


if __name__ == "__main__":
    with lstrace.ls_session(project_name=PROJECT):
        for question in QUESTIONS:
            print(model.invoke(question).content)
    where_to_look(PROJECT, lstrace.flush(timeout=120))

    review_like_a_person()
    out = Path(tempfile.mkdtemp(prefix="lstrace-export-"))
    for fmt in ("sft", "preference"):
        path = out / f"{fmt}.jsonl"
        try:
            done = lstrace.export_project(PROJECT, fmt, path)
        except NothingToExport as empty:  # e.g. a real model answered right: nothing to correct
            print(f"\nno {fmt} rows: {empty}")
            continue
        first = json.loads(path.read_text().splitlines()[0])
        print(f"\n{done.rows} {fmt} row(s) in {path}; the first:\n  {first}")
