"""Where an export writes: standard output, a caller's stream, or a path.

A path that is (or, through symlinks, leads to) a regular file, or to nothing
yet, is written under a temporary name next to the real file and renamed over
it when complete, so a reader never sees half a dataset and a failed export
leaves the old file whole. Anything else (a FIFO, a device such as /dev/null,
the ``/dev/fd/N`` of a shell's process substitution) is opened and written
through: renaming a file over those would replace the thing itself.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from lstrace._errors import BadRequest

# Names of already-open descriptors: never files to replace, even when one leads to a file.
_DESCRIPTOR_DIRS = ("/dev/fd/", "/proc/self/fd/")
_STD_STREAMS = ("/dev/stdout", "/dev/stderr")


@contextlib.contextmanager
def opened(output: str | Path | TextIO) -> Iterator[TextIO]:
    """A text stream for ``output`` (``"-"``: standard output), committed on a clean exit.

    Raises :class:`BadRequest` when the path cannot be written (a directory, a
    missing parent, no permission). An exception inside the block leaves a
    regular file as it was.
    """
    if not isinstance(output, str | Path):
        yield output
        return
    if str(output) == "-":
        yield sys.stdout
        return
    path = Path(output)
    if writes_through(path):
        with _failing_as_bad_request(path), path.open("w", encoding="utf-8", newline="") as out:
            yield out
        return
    with _replaced(path) as out:
        yield out


def writes_through(path: Path) -> bool:
    """True for paths that name something other than a regular file (or nothing yet)."""
    text = str(path)
    if text in _STD_STREAMS or text.startswith(_DESCRIPTOR_DIRS):
        return True
    try:
        mode = path.stat().st_mode  # follows symlinks
    except OSError:
        return False  # nothing there yet (or a dangling link): create the file
    if stat.S_ISDIR(mode):
        raise BadRequest(f"cannot write {path}: it is a directory.")
    return not stat.S_ISREG(mode)


@contextlib.contextmanager
def _replaced(path: Path) -> Iterator[TextIO]:
    """Write ``path``'s real target under a temporary name; rename it into place at the end."""
    real = Path(os.path.realpath(path))
    partial = real.with_name(f".{real.name}.partial")
    try:
        with _failing_as_bad_request(path):
            out = partial.open("w", encoding="utf-8", newline="")
        with out:
            yield out
        with _failing_as_bad_request(path):
            with contextlib.suppress(FileNotFoundError):
                partial.chmod(stat.S_IMODE(real.stat().st_mode))  # keep the old file's mode
            partial.replace(real)
    finally:
        partial.unlink(missing_ok=True)


@contextlib.contextmanager
def _failing_as_bad_request(path: Path) -> Iterator[None]:
    try:
        yield
    except IsADirectoryError:
        raise BadRequest(f"cannot write {path}: it is a directory.") from None
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        raise BadRequest(f"cannot write {path}: {exc.strerror or exc}.") from None
