"""Sampling by top-level trace: all LLM calls of one chain run are kept or dropped together.

The decision is a hash of the trace's root run id (and the seed), so every
call of a trace reaches the same verdict without shared state, and a given
seed makes decisions reproducible. Roots are found through the parent links
of chain, tool and retriever runs, which handlers record only while a scope
samples (otherwise they ask LangChain not to send those events at all).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from uuid import UUID

_parents: dict[UUID, UUID | None] = {}
_PROCESS_SALT = secrets.token_hex(8)


def note(run_id: UUID, parent_run_id: UUID | None) -> None:
    """Remember a non-LLM run's parent while it runs."""
    _parents[run_id] = parent_run_id


def forget(run_id: UUID) -> None:
    _parents.pop(run_id, None)


def root_of(run_id: UUID, parent_run_id: UUID | None) -> UUID:
    """The outermost known ancestor of a run (the run itself when it has no parent)."""
    root = run_id
    current = parent_run_id
    seen = 0
    while current is not None and seen < 1000:  # guards against a cycle
        root = current
        current = _parents.get(current)
        seen += 1
    return root


def keep(root: UUID, rate: float, seed: int | str | None) -> bool:
    """The verdict for one trace: kept with probability ``rate``."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    salt = _PROCESS_SALT if seed is None else str(seed)
    digest = hashlib.blake2b(f"{salt}:{root}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < rate


def reset() -> None:
    """Forget the parent links (after fork: their runs belong to the parent's threads)."""
    _parents.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=reset)
