#!/usr/bin/env python3
"""See lstrace work in two minutes: a local Label Studio, one example, where to look.

Run it with the Python where lstrace is installed::

    python -m venv .venv && .venv/bin/pip install -e . && .venv/bin/python scripts/demo.py

It installs Label Studio into its own venv (``.venv-labelstudio``) unless it is
there already, starts it on http://127.0.0.1:8080 with a demo user and token
(data in ``.labelstudio-data``), runs ``examples/custom_config.py`` with fake
models (no API key needed) and prints the page to open and how to log in. The
server keeps running; stop it with ``python scripts/labelstudio.py stop``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import labelstudio  # scripts/labelstudio.py, beside this file

EXAMPLE = labelstudio.REPO_ROOT / "examples" / "custom_config.py"


def main(argv: list[str] | None = None) -> int:
    """Start the server, run the example, print where to look; 1 on failure."""
    args = _parser().parse_args(argv)
    if not _lstrace_importable():
        print(
            f"error: lstrace is not installed for {sys.executable}.\n"
            "Install it first (pip install -e .) and run this script with that Python.",
            file=sys.stderr,
        )
        return 1
    try:
        url = _start_server(args.port, args.data_dir)
    except (labelstudio.LabelStudioError, OSError) as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        if "already in use" in str(exc):
            print("Pick another port: scripts/demo.py --port 8090", file=sys.stderr)
        return 1
    print(f"\nRunning {EXAMPLE.relative_to(labelstudio.REPO_ROOT)} against it:\n")
    done = subprocess.run([sys.executable, str(EXAMPLE)], env=_example_env(url), check=False)
    if done.returncode != 0:
        return 1
    _print_where_to_look(url, args.data_dir)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--port", type=int, default=labelstudio.DEFAULT_PORT)
    parser.add_argument("--data-dir", type=Path, default=labelstudio.DEFAULT_DATA_DIR)
    return parser


def _lstrace_importable() -> bool:
    probe = [sys.executable, "-c", "import lstrace"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def _start_server(port: int, data_dir: Path) -> str:
    """Install Label Studio if needed, start it (or reuse it), return its URL."""
    labelstudio.install()  # prints one line; takes about two minutes the first time
    url = labelstudio.base_url(port)
    print(f"Starting Label Studio at {url} (the first start takes about a minute) ", end="")
    t0 = time.monotonic()
    try:
        labelstudio.start(port, data_dir, progress=True)
    finally:
        print()
    print(f"Label Studio is up after {time.monotonic() - t0:.0f} s.")
    return url


def _example_env(url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        LABEL_STUDIO_URL=url,
        LABEL_STUDIO_API_KEY=labelstudio.DEFAULT_TOKEN,
        LSTRACE_EXAMPLE_MODELS="fake",  # the demo needs no provider key
    )
    env.pop("LABEL_STUDIO_PROJECT_ID", None)
    return env


def _print_where_to_look(url: str, data_dir: Path) -> None:
    python = _shown_python()
    stop = f"{python} scripts/labelstudio.py stop"
    if data_dir.resolve() != labelstudio.DEFAULT_DATA_DIR.resolve():
        stop += f" --data-dir {data_dir}"
    print(
        f"""
Done. Open {url} in your browser and log in:
  email:    {labelstudio.DEFAULT_USERNAME}
  password: {labelstudio.DEFAULT_PASSWORD}
Then open the project "lstrace example: support chat grading" and click a task:
the conversation, the model's reply ready to edit, and the grading questions.

To send your own calls there:
  export LABEL_STUDIO_URL={url}
  export LABEL_STUDIO_API_KEY={labelstudio.DEFAULT_TOKEN}
  {python} examples/decorator.py      # or any script in examples/

Stop the server with: {stop}"""
    )


def _shown_python() -> str:
    """This interpreter as the reader would type it (``.venv/bin/python`` in the repo)."""
    exe = Path(sys.executable)
    try:
        return str(exe.relative_to(Path.cwd()))
    except ValueError:
        return str(exe)


if __name__ == "__main__":
    sys.exit(main())
