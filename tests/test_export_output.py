"""Where an export's rows go (``-o PATH``): a regular file is replaced atomically, anything
else (a FIFO, a device, a process substitution's ``/dev/fd/N``) is written through, and
symlinks are followed. No server is involved."""

from __future__ import annotations

import os
import stat
import sys
import threading
from pathlib import Path

import pytest

from lstrace._errors import BadRequest
from lstrace._export.output import opened

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and /dev/fd are POSIX")


def write(target: str | Path, text: str) -> None:
    with opened(target) as out:
        out.write(text)


def test_a_regular_file_is_replaced_only_when_complete(tmp_path: Path) -> None:
    """Until the export completes the old file stays whole; a failed export leaves it as it
    was and no partial file behind; the new file keeps the old one's permissions."""
    path = tmp_path / "sft.jsonl"
    path.write_text("old\n")
    path.chmod(0o640)
    with pytest.raises(RuntimeError), opened(path) as out:
        out.write("new, half")
        assert path.read_text() == "old\n"
        raise RuntimeError("the server went away")
    assert path.read_text() == "old\n"
    write(path, "new\n")
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sft.jsonl"]


def test_a_symlink_is_followed_and_kept(tmp_path: Path) -> None:
    """-o through a symlink writes its target (atomically, in the target's directory); the
    link itself stays a link, and a dangling link gets its target created."""
    (tmp_path / "data").mkdir()
    target = tmp_path / "data" / "real.jsonl"
    target.write_text("old\n")
    link = tmp_path / "latest.jsonl"
    link.symlink_to(target)
    write(link, "new\n")
    assert link.is_symlink() and target.read_text() == "new\n"
    dangling = tmp_path / "next.jsonl"
    dangling.symlink_to(tmp_path / "data" / "not-yet.jsonl")
    write(dangling, "fresh\n")
    assert dangling.is_symlink() and (tmp_path / "data" / "not-yet.jsonl").read_text() == "fresh\n"


def test_a_fifo_is_written_through_not_replaced(tmp_path: Path) -> None:
    """-o FIFO: the reader at the other end gets the rows and the FIFO is still a FIFO."""
    fifo = tmp_path / "rows.fifo"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    write(fifo, "one\ntwo\n")
    reader.join(timeout=60)
    assert got == ["one\ntwo\n"]
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["rows.fifo"]


def null_device(tmp_path: Path) -> Path:
    """/dev/null, or for root (who could replace the real one) a private node of the same
    device: a regression must not break the machine the tests run on."""
    if os.geteuid() != 0:
        return Path("/dev/null")
    node = tmp_path / "null"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    return node


def test_a_device_is_written_through(tmp_path: Path) -> None:
    """-o /dev/null writes into the device (as root, a rename would replace the node)."""
    device = null_device(tmp_path)
    before = device.stat()
    write(device, "gone\n")
    after = device.stat()
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino


def test_a_process_substitution_path_is_written_through() -> None:
    """-o >(wc -l) names a pipe as /dev/fd/N: the rows go into that pipe."""
    read_end, write_end = os.pipe()
    try:
        write(f"/dev/fd/{write_end}", "a\nb\n")
        os.close(write_end)
        write_end = -1
        with os.fdopen(read_end) as pipe:
            read_end = -1
            assert pipe.read() == "a\nb\n"
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)


def test_unwritable_places_are_a_bad_request(tmp_path: Path) -> None:
    """A directory, or a file in a directory that does not exist: one line naming the path."""
    with pytest.raises(BadRequest, match=r"cannot write .*: .*directory"):
        write(tmp_path, "x")
    with pytest.raises(BadRequest, match=r"cannot write .*missing/out\.jsonl"):
        write(tmp_path / "missing" / "out.jsonl", "x")
