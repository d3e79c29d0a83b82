"""Ready-made maskers for the ``mask=`` option, composable with your own.

A masker is any ``Callable[[str], str]``. Combine several with :func:`compose`::

    from lstrace import masking
    lstrace.enable(mask=masking.compose(masking.emails, masking.api_keys, my_masker))

:data:`default` masks all four kinds below.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["api_keys", "compose", "credit_cards", "default", "emails", "phone_numbers"]

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(
    r"(?<![\w+])\+?\d{1,3}?[ .-]?(?:\(\d{2,4}\)|\d{2,4})[ .-]?\d{3,4}[ .-]?\d{3,4}(?!\w)"
)
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_API_KEY = re.compile(
    r"\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{16,}"  # OpenAI, Anthropic
    r"|AKIA[0-9A-Z]{16}"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{30,}"  # GitHub
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"  # Slack
    r"|AIza[0-9A-Za-z_-]{35}"  # Google
    r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"  # JWT
    r")"
    r"|(?i:(?<=token[ =:\"'])|(?<=key[ =:\"'])|(?<=secret[ =:\"']))[A-Za-z0-9_\-]{20,}"
)


def emails(text: str) -> str:
    """Replace e-mail addresses with ``[EMAIL]``."""
    return _EMAIL.sub("[EMAIL]", text)


def phone_numbers(text: str) -> str:
    """Replace phone numbers (9 or more digits, international or local) with ``[PHONE]``."""
    return _PHONE.sub(lambda m: "[PHONE]" if _digits(m.group()) >= 9 else m.group(), text)


def credit_cards(text: str) -> str:
    """Replace card numbers (13-19 digits passing the Luhn check) with ``[CARD]``."""
    return _CARD.sub(lambda m: "[CARD]" if _luhn(m.group()) else m.group(), text)


def api_keys(text: str) -> str:
    """Replace strings that look like API keys or tokens with ``[SECRET]``."""
    return _API_KEY.sub("[SECRET]", text)


def compose(*maskers: Callable[[str], str]) -> Callable[[str], str]:
    """One masker applying each of ``maskers`` in order."""

    def masked(text: str) -> str:
        for mask in maskers:
            text = mask(text)
        return text

    return masked


default = compose(api_keys, emails, credit_cards, phone_numbers)
default.__doc__ = "Masks API keys, e-mail addresses, card numbers and phone numbers, in that order."


def _digits(text: str) -> int:
    return sum(ch.isdigit() for ch in text)


def _luhn(text: str) -> bool:
    digits = [int(ch) for ch in text if ch.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, digit in enumerate(reversed(digits)):
        doubled = digit * 2 if i % 2 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return total % 10 == 0
