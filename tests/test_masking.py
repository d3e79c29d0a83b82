"""lstrace.masking: each masker on a corpus of what it must mask and what it must leave alone.

Every true positive must come out with the placeholder where the sensitive part was and
the rest of the text unchanged; every false positive (UUIDs, ISBNs, dates, versions,
addresses, order numbers, prose) must come out byte for byte as it went in, from each
masker and from ``masking.default``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from lstrace import masking

# (text, expected) pairs per masker.
EMAILS = [
    ("write to ada@example.com today", "write to [EMAIL] today"),
    ("bob.smith+tag@mail.example.co.uk", "[EMAIL]"),
    ("<ada_lovelace@example.org>", "<[EMAIL]>"),
    ("Ada.L@Example.COM, bob@example.io.", "[EMAIL], [EMAIL]."),
]
NOT_EMAILS = [
    "ping @ada on the channel",
    "user@localhost is not an address",
    "pip install lstrace@git+https",
    "decorators: @ls_track and @pytest.fixture",
    "price: 3 @ 4.50 each",
]

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N"
SECRETS = [
    ("token: 0123456789abcdef0123456789abcdef", "token: [SECRET]"),
    ("password=hunter2", "password=[SECRET]"),
    ("password: hunter", "password: [SECRET]"),
    ('{"password": "correct horse battery staple"}', '{"password": "[SECRET]"}'),
    ("DB_PASSWORD='s3cr3t!'", "DB_PASSWORD='[SECRET]'"),
    ("api_key = abcdef123456", "api_key = [SECRET]"),
    ('{"api_key": "abc def"}', '{"api_key": "[SECRET]"}'),
    ("client_secret: Zx81kQm2LpR7", "client_secret: [SECRET]"),
    (
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AWS_SECRET_ACCESS_KEY=[SECRET]",
    ),
    (f"Authorization: Bearer {JWT}", "Authorization: Bearer [SECRET]"),
    ("authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l", "authorization: Basic [SECRET]"),
    (
        'headers={"Authorization": "Token abc123def456"}',
        'headers={"Authorization": "Token [SECRET]"}',
    ),
    ("curl -H 'Authorization: Bearer abc.def-ghi'", "curl -H 'Authorization: Bearer [SECRET]'"),
    ("use bearer AbCdEf0123456789AbCdEf for it", "use bearer [SECRET] for it"),
    (f"jwt {JWT} ok", "jwt [SECRET] ok"),
    ("key sk-proj-abcdefghijklmnopqrstuvwxyz123456 here", "key [SECRET] here"),
    ("sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789", "[SECRET]"),
    ("AKIAIOSFODNN7EXAMPLE", "[SECRET]"),
    ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "[SECRET]"),
    ("github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "[SECRET]"),
    ("glpat-abcdefghij0123456789", "[SECRET]"),
    ("xoxb-1234567890-abcdefghij", "[SECRET]"),
    ("AIzaSyA-abcdefghijklmnopqrstuvwxyz01234", "[SECRET]"),
    ("sk_live_abcdefghijklmnop0123", "[SECRET]"),
    ("hf_abcdefghijklmnopqrstuvwxyz0123456", "[SECRET]"),
    ("npm_abcdefghijklmnopqrstuvwxyz0123456789", "[SECRET]"),
    (
        "postgres://app:pa55word@db.internal:5432/main",
        "postgres://app:[SECRET]@db.internal:5432/main",
    ),
    ("https://bob:s3cret@example.com/x", "https://bob:[SECRET]@example.com/x"),
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY----- done",
        "[SECRET] done",
    ),
    ("-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----", "[SECRET]"),
]
NOT_SECRETS = [
    "max_tokens=100, max_token=256, temperature=0.2",
    "Each token: a piece of a word.",
    "tokens: 150 used",
    "secret: no",
    "password: null",
    "the password is stored hashed",
    "sha 3f786850e387550fdab836ed7e6dc881de23001b",
    "id 550e8400-e29b-41d4-a716-446655440000",
    "the bearer of good news",
    "https://example.com/path?q=1",
    "ssh git@github.com:org/repo.git",
    "skip-navigation and sk-8 are not keys",
    "api_key=true",
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBg\n-----END PUBLIC KEY-----",
]

CARDS = [
    ("card 4111 1111 1111 1111 exp 12/29", "card [CARD] exp 12/29"),
    ("4111-1111-1111-1111", "[CARD]"),
    ("4111111111111111", "[CARD]"),
    ("mc 5555555555554444.", "mc [CARD]."),
    ("2223003122003222", "[CARD]"),
    ("amex 3782 822463 10005", "amex [CARD]"),
    ("discover 6011111111111117", "discover [CARD]"),
    ("jcb 3530111333300000", "jcb [CARD]"),
    ("diners 30569309025904", "diners [CARD]"),
]
NOT_CARDS = [
    "4111 1111 1111 1112",  # fails Luhn
    "4111 1111-1111 1111",  # mixed separators
    "ISBN 978-3-16-148410-0 and 9783161484100",
    "order 1234567890123",  # no card network starts with 1
    "0000 0000 0000 0000",
    "id 550e8400-e29b-41d4-a716-446655440000",
    "tracking 7712 3456 7890 12",  # 14 digits, 7: no network
    "+1 415-555-2671",
    "ts 1700000000123456",
]

PHONES = [
    ("call +1 415-555-2671 tomorrow", "call [PHONE] tomorrow"),
    ("(415) 555-2671", "[PHONE]"),
    ("415.555.2671 or 415-555-2671.", "[PHONE] or [PHONE]."),
    ("+1 (212) 555-0198", "[PHONE]"),
    ("London: +44 20 7946 0958", "London: [PHONE]"),
    ("Paris +33 1 42 68 53 00, mobile +33 6 12 34 56 78", "Paris [PHONE], mobile [PHONE]"),
    ("+49 30 901820", "[PHONE]"),
    ("+91 98765 43210", "[PHONE]"),
    ("+81 3-1234-5678", "[PHONE]"),
    ("call 415-555-2671 2 times", "call [PHONE] 2 times"),
]
NOT_PHONES = [
    "id 550e8400-e29b-41d4-a716-446655440000",
    "ISBN 978-3-16-148410-0, ISBN 0-306-40615-2",
    "on 2024-07-18 at 10:30, 2024-07-18T10:30:00",
    "version 1.23.2 and 10.0.19045.3693",
    "host 192.168.100.200:8080",
    "order #1234567890",
    "timestamp 1700000000",
    "price $1,234,567.89",
    "sha 3f786850e387550fdab836ed7e6dc881de23001b",
    "call 555-0132",  # too short to be a full number
    "coordinates 48.8584, 2.2945",
    "020 7946 0958",  # British national format: only with phone_numbers_in("GB")
]

Case = tuple[str, str]


def check(mask: Callable[[str], str], positives: list[Case], negatives: list[str]) -> None:
    wrong = [(text, mask(text), want) for text, want in positives if mask(text) != want]
    wrong += [(text, mask(text), text) for text in negatives if mask(text) != text]
    assert not wrong, "\n".join(f"{t!r} -> {got!r}, wanted {want!r}" for t, got, want in wrong)


def test_emails_corpus() -> None:
    """Addresses are masked; handles, decorators and host-less names are not."""
    check(masking.emails, EMAILS, NOT_EMAILS)


def test_secrets_corpus() -> None:
    """Keys in their issuers' formats, JWTs, Authorization values, URL passwords, PEM
    private keys and credential-named assignments are masked; counts, prose, hashes,
    UUIDs and public keys are not."""
    check(masking.secrets, SECRETS, NOT_SECRETS)


def test_api_keys_is_secrets() -> None:
    """The earlier name still works and masks the same things."""
    assert masking.api_keys is masking.secrets


def test_credit_cards_corpus() -> None:
    """Card numbers of each network are masked (Luhn, issuer prefix, length, one kind of
    separator); ISBNs, UUIDs, order numbers and Luhn failures are not."""
    check(masking.credit_cards, CARDS, NOT_CARDS)


def test_phone_numbers_corpus() -> None:
    """International numbers and North American ones are masked; UUIDs, ISBNs, dates,
    versions, IP addresses, prices and timestamps are not."""
    check(masking.phone_numbers, PHONES, NOT_PHONES)


def test_phone_numbers_in_other_regions() -> None:
    """phone_numbers_in masks the national format of the regions it is given."""
    british = masking.phone_numbers_in("GB")
    french = masking.phone_numbers_in("fr")
    assert british("ring 020 7946 0958 now") == "ring [PHONE] now"
    assert french("appelez le 01 42 68 53 00") == "appelez le [PHONE]"
    assert british("(415) 555-2671") == "(415) 555-2671"  # not a British number
    assert british("+1 415-555-2671") == "[PHONE]"  # international: any region
    with pytest.raises(ValueError, match="unknown phone regions"):
        masking.phone_numbers_in("XX")


def test_default_corpus() -> None:
    """The default masker masks every true positive above and no false positive."""
    positives = [(text, want) for case in (EMAILS, SECRETS, CARDS, PHONES) for text, want in case]
    maskers = (masking.emails, masking.secrets, masking.credit_cards, masking.phone_numbers)
    negatives = [  # a phone number is no card, but default masks it as a phone
        text
        for text in NOT_EMAILS + NOT_SECRETS + NOT_CARDS + NOT_PHONES
        if all(mask(text) == text for mask in maskers)
    ]
    assert len(negatives) > 30
    check(masking.default, positives, negatives)


def test_default_in_a_mixed_text() -> None:
    """One text with one of each: each becomes its placeholder, the prose stays."""
    text = (
        "Hi, I'm Ada (ada@example.com, +44 20 7946 0958). Card 4111 1111 1111 1111, "
        "order 550e8400-e29b-41d4-a716-446655440000, password=hunter2."
    )
    assert masking.default(text) == (
        "Hi, I'm Ada ([EMAIL], [PHONE]). Card [CARD], "
        "order 550e8400-e29b-41d4-a716-446655440000, password=[SECRET]."
    )


def test_maskers_import_nothing_when_they_run() -> None:
    """After ``import lstrace.masking`` every masker runs on any country's numbers without
    importing a module: they run on lstrace's background thread, which must never import
    (the application's thread may be importing the same module at that moment)."""
    script = """
import sys
from lstrace import masking
before = set(sys.modules)
for mask in (masking.default, masking.phone_numbers_in("GB", "FR", "JP", "BR")):
    mask("+44 20 7946 0958 +33 1 42 68 53 00 +81 3-1234-5678 +55 11 91234-5678 +7 495 123-45-67")
    mask("ada@example.com 4111 1111 1111 1111 password=x1 +61 2 9374 4000 020 7946 0958")
print(sorted(set(sys.modules) - before))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"
