#!/usr/bin/env python3
"""Masking benchmark: CPU time of each masker of ``lstrace.masking`` on a 1 KB text.

A mask runs on every text of every captured call, on lstrace's background thread, so
it must stay well under the cost of capturing the call. Prints, for each masker, the
median CPU time per call over many runs, on three 1 KB texts: plain prose, prose full of
numbers that are not personal data (dates, versions, ids, prices), and prose dense with
personal data (ten phone numbers, five each of e-mails, cards, passwords and keys). Also
the one-time CPU cost of ``import lstrace.masking`` (phonenumbers' metadata). Target:
``masking.default`` under 1 ms per 1 KB text without personal data.

    python benchmarks/bench_masking.py [--runs 300]

Not a test: it checks nothing itself; it measures and says how the figures compare.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

TARGET_US = 1000.0

PROSE = (
    "Thank you for contacting support. I looked at your account and the deployment that "
    "failed this morning. The build finished, but the release could not start because "
    "the project used all of its quota. You can stop a service you no longer need, or "
    "ask for a higher quota in the settings page; the team usually answers within a day. "
)
NUMBERS = (
    "Release 1.23.2 (build 10.0.19045.3693) went out on 2024-07-18 at 10:30 to host "
    "192.168.100.200:8080; order #1234567890, id 550e8400-e29b-41d4-a716-446655440000, "
    "ISBN 978-3-16-148410-0, total $1,234,567.89, max_tokens=100, ts 1700000000. "
)
PERSONAL = (  # {n}: every repetition has numbers of its own (the phone masker caches)
    "Hi, I'm Ada (ada{n}@example.com, +44 20 7946 0{n:03d}, (415) 555-2{n:03d}). My card is "
    "4111 1111 1111 1111 and my password=hunter{n}; the key is sk-proj-abcdefghij012345678{n}. "
)


def kilobyte(text: str, start: int = 0) -> str:
    """``text`` repeated to 1 KB, ``{n}`` numbered from ``start`` in each repetition."""
    parts = [text.format(n=start + i) for i in range(1024 // len(text) + 2)]
    return "".join(parts)[:1024]


def fresh(text: str) -> Callable[[], str]:
    """A new 1 KB text on every call, so no masker's cache sees a number twice."""
    counter = iter(range(0, 10**9, 10))
    return lambda: kilobyte(text, next(counter))


def cpu_us(mask: Callable[[str], str], make: Callable[[], str], runs: int) -> float:
    """Median CPU microseconds of one ``mask(text)`` call, over ``runs`` blocks of 10."""
    times = []
    for _ in range(runs):
        texts = [make() for _ in range(10)]
        start = time.process_time()
        for text in texts:
            mask(text)
        times.append((time.process_time() - start) / 10)
    return statistics.median(times) * 1e6


def import_cost() -> float:
    """CPU seconds a fresh process spends on ``import lstrace.masking`` after ``import lstrace``."""
    code = (
        "import time, lstrace; t = time.process_time(); import lstrace.masking; "
        "print(time.process_time() - t)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()

    from lstrace import masking

    texts = {"prose": fresh(PROSE), "numbers": fresh(NUMBERS), "personal": fresh(PERSONAL)}
    maskers = {
        "secrets": masking.secrets,
        "emails": masking.emails,
        "credit_cards": masking.credit_cards,
        "phone_numbers": masking.phone_numbers,
        "default": masking.default,
    }
    print(f"CPU per call on a 1 KB text, median of {args.runs} x 10 calls (us)")
    print(f"{'masker':<15}" + "".join(f"{name:>12}" for name in texts))
    worst = 0.0
    for name, mask in maskers.items():
        figures = [cpu_us(mask, make, args.runs) for make in texts.values()]
        print(f"{name:<15}" + "".join(f"{f:>12.1f}" for f in figures))
        if name == "default":
            worst = max(figures[:2])
    verdict = "PASS" if worst < TARGET_US else "FAIL"
    print(f"\ndefault on texts without personal data: {worst:.0f} us (target < {TARGET_US:.0f} us)")
    print(f"  {verdict}; with it, each phone number found costs libphonenumber's parse")
    print(
        f"import lstrace.masking (phonenumbers metadata), once: {import_cost() * 1000:.0f} ms CPU"
    )


if __name__ == "__main__":
    main()
