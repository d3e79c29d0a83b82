#!/usr/bin/env python3
"""Time and memory of ``lstrace export`` on projects of growing size; prints a table.

Usage (from the repository root, with the dev venv's Python)::

    python benchmarks/export_paging.py                       # 500, 2,500 and 10,000 tasks
    python benchmarks/export_paging.py --sizes 2500 --port 18123

Starts a fresh Label Studio (scripts/labelstudio.py, from the recording template when one
exists) unless ``--url`` names a running one, bulk-imports annotated tasks in lstrace's
layout (tests/annotated_project.py), then runs each export in a child process so its peak
RSS is its own. ``traced peak`` is the most memory Python allocated *during* the export
(tracemalloc, started after imports): flat across sizes means the export streams.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.annotated_project import seed_project  # noqa: E402
from tests.labelstudio_script import load_script as _load  # noqa: E402
from tests.live.test_export_live import TOKEN  # noqa: E402

FORMATS = ("sft", "preference", "ratings")

CHILD = """
import json, resource, sys, time, tracemalloc
from lstrace.export import export_project
url, project, fmt, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
from label_studio_sdk import LabelStudio
from label_studio_sdk.types import lse_task_serializer_for_annotators, lse_task  # parsed pages
sdk = LabelStudio(base_url=url, api_key=sys.argv[5])
sdk.projects, sdk.tasks, sdk.users  # the SDK imports its clients on first use: not export memory
tracemalloc.start()
started = time.perf_counter()
result = export_project(project, fmt, out, url=url, api_key=sys.argv[5])
took = time.perf_counter() - started
peak = tracemalloc.get_traced_memory()[1]
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": result.rows, "tasks": result.tasks, "seconds": took,
                  "traced_peak": peak, "max_rss_kb": rss}))
"""


def run_export(url: str, project: int, fmt: str, out: Path) -> dict[str, float]:
    """One export in a child process; returns its figures."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, url, str(project), fmt, str(out), TOKEN],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    figures: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2_500, 10_000])
    parser.add_argument("--url", help="a running Label Studio (token: the tests' legacy token)")
    parser.add_argument("--port", type=int, default=18123)
    args = parser.parse_args()
    data = None
    url = args.url
    if url is None:
        recorder, ls = _load("record_cassettes"), _load("labelstudio")
        url, data = recorder.start_fresh(ls, args.port, pristine=False)
    out_dir = Path(REPO / ".benchmark-out")
    out_dir.mkdir(exist_ok=True)
    try:
        print(
            f"{'tasks':>7} {'format':>10} {'rows':>7} {'seconds':>8} {'tasks/s':>8} "
            f"{'traced peak':>12} {'max RSS':>9}"
        )
        for size in args.sizes:
            started = time.perf_counter()
            project = seed_project(url, TOKEN, f"Benchmark {size}", size)
            print(f"(seeded {size} annotated tasks in {time.perf_counter() - started:.1f} s)")
            for fmt in FORMATS:
                f = run_export(url, project, fmt, out_dir / f"{size}.{fmt}.jsonl")
                print(
                    f"{f['tasks']:>7.0f} {fmt:>10} {f['rows']:>7.0f} {f['seconds']:>8.1f} "
                    f"{f['tasks'] / f['seconds']:>8.0f} {f['traced_peak'] / 2**20:>9.1f} MiB "
                    f"{f['max_rss_kb'] / 1024:>5.0f} MiB"
                )
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
        if data is not None:
            ls.stop(data)
            shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
