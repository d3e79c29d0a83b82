"""Credentials inside a URL (``http://user:password@host``) stay in memory.

Destinations are stored, logged and shown with the URL's credentials redacted
(lstrace/_secrets.py, lstrace/_options.py); the URL as given reaches the client from
memory only, like the API key. Checked on the spool file's bytes, lstrace's log, the
exit line and ``lstrace status``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lstrace._options import make_args, resolve
from lstrace._secrets import redact_url

SECRET = "s3cret-Pa55"


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("http://user:pw@host:8080", "http://***@host:8080"),
        ("https://token@ls.example.com/base", "https://***@ls.example.com/base"),
        ("http://user:p@ss@host/api?x=1", "http://***@host/api?x=1"),
        ("http://host:8080/a@b", "http://host:8080/a@b"),  # an @ in the path is no credential
        ("http://localhost:8080", "http://localhost:8080"),
        (
            "cannot reach http://u:pw@h:1 and https://v:pw@k",
            "cannot reach http://***@h:1 and https://***@k",
        ),
    ],
)
def test_redact_url_hides_whatever_precedes_the_host(given: str, shown: str) -> None:
    """User, password or token before the host become ``***``; the rest of the text stays."""
    assert redact_url(given) == shown


def test_a_destination_holds_the_redacted_url_and_the_options_the_url_as_given() -> None:
    """The spooled destination (and its key) never see the password; the resolved options keep
    the URL as given, out of their repr, and an inner scope inherits it."""
    options = resolve(make_args(url=f"http://user:{SECRET}@127.0.0.1:9", api_key="k"), None)
    assert options.destination.url == "http://***@127.0.0.1:9"
    assert SECRET not in repr(options.destination.to_spec()) and SECRET not in repr(options)
    assert options.url == f"http://user:{SECRET}@127.0.0.1:9"
    inner = resolve(make_args(tags=["t"]), options)
    assert inner.url == options.url and inner.destination == options.destination


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_password_in_the_url_reaches_neither_spool_nor_log_nor_status(tmp_path: Path) -> None:
    """A fresh process sends to ``http://user:<password>@<a port nothing answers>``, with a key
    and then without one: its calls wait in the spool; the password is in none of the spool
    file's bytes, lstrace's log (DEBUG), the exit line, or ``lstrace status``."""
    spool = tmp_path / "spool.sqlite3"
    url = f"http://user:{SECRET}@127.0.0.1:{_dead_port()}"
    script = textwrap.dedent(
        f"""
        import logging, sys
        logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
        logging.getLogger("lstrace").setLevel(logging.DEBUG)
        import lstrace
        from langchain_core.language_models import FakeListLLM

        lstrace.configure(shutdown_timeout=1.0, flush_interval=0.1, max_backoff=0.2)
        llm = FakeListLLM(responses=["ok"] * 3)
        with lstrace.ls_session(project_name="secrets", url={url!r}, api_key="k"):
            llm.invoke("with a key")
        with lstrace.ls_session(project_name="secrets: no key", url={url!r}):
            llm.invoke("without a key")
        lstrace.enable(project_id=3, url={url!r}, api_key="k",
                       project_config='<View><Text name="q" value="$prompt"/>'
                                      '<TextArea name="a" toName="q"/></View>')
        llm.invoke("checked at entry")
        print("pending", lstrace.flush(timeout=2.0).pending)
        """
    )
    env = {**os.environ, "LSTRACE_SPOOL_PATH": str(spool)}
    env.pop("LABEL_STUDIO_API_KEY", None)
    run = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parent.parent,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "pending 3" in run.stdout
    assert "lstrace" in run.stderr and "***@127.0.0.1" in run.stderr  # it did log, redacted
    assert SECRET not in run.stderr
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("spool"))
    assert SECRET.encode() not in stored
    status = subprocess.run(
        [sys.executable, "-m", "lstrace.cli", "status", "--spool", str(spool), "--url", url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "3 tasks waiting" in status.stdout, status
    assert "***@127.0.0.1" in status.stdout + status.stderr
    assert SECRET not in status.stdout + status.stderr
