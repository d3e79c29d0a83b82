"""Ready-made maskers for the ``mask=`` option, composable with your own.

A masker is any ``Callable[[str], str]``. Combine several with :func:`compose`::

    from lstrace import masking
    lstrace.enable(mask=masking.compose(masking.secrets, masking.emails, my_masker))

:data:`default` applies :func:`secrets`, :func:`emails`, :func:`credit_cards` and
:func:`phone_numbers`, in that order. Each masker replaces what it finds with a
placeholder (``[SECRET]``, ``[EMAIL]``, ``[CARD]``, ``[PHONE]``) and leaves everything
else byte for byte as it was.

Masking is pattern matching, not a guarantee: a password written in prose ("my password
is hunter2"), a key in a format listed nowhere below, or a phone number in another
country's national format (without its ``+`` prefix; see :func:`phone_numbers_in`)
passes through. Use ``before_send`` or your own masker for what you know about your data.

Phone numbers are recognised by Google's libphonenumber rules (the ``phonenumbers``
package); its metadata is loaded when this module is imported (about 0.15 s of CPU,
once), so that the maskers never import anything on lstrace's background thread.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import phonenumbers

__all__ = [
    "api_keys",
    "compose",
    "credit_cards",
    "default",
    "emails",
    "phone_numbers",
    "phone_numbers_in",
    "secrets",
]

# Every region's metadata, now, on the importing (application's) thread: phonenumbers
# otherwise imports a region's data module the first time it meets that country code,
# which would happen on lstrace's background thread.
phonenumbers.PhoneMetadata.load_all()

SECRET, EMAIL, CARD, PHONE = "[SECRET]", "[EMAIL]", "[CARD]", "[PHONE]"

# -- e-mail addresses ---------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]*[A-Za-z0-9_%+-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![\w-])"
)


def emails(text: str) -> str:
    """Replace e-mail addresses (``name@domain.tld``) with ``[EMAIL]``."""
    if "@" not in text:
        return text
    return _EMAIL.sub(EMAIL, text)


# -- secrets --------------------------------------------------------------------------------

# Credentials in the formats their issuers document: always a secret, wherever they stand.
_TOKEN_FORMATS = (
    r"sk-(?:proj-|ant-(?:api\d\d-)?|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",  # OpenAI, Anthropic
    r"(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}",  # AWS access key ids
    r"gh[pousr]_[A-Za-z0-9]{36,}",  # GitHub tokens
    r"github_pat_[A-Za-z0-9_]{22,}",  # GitHub fine-grained tokens
    r"glpat-[A-Za-z0-9_-]{20,}",  # GitLab personal access tokens
    r"xox[abposr]-[A-Za-z0-9-]{10,}",  # Slack tokens
    r"xapp-\d-[A-Za-z0-9-]{10,}",  # Slack app tokens
    r"AIza[0-9A-Za-z_-]{35}",  # Google API keys
    r"(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,}",  # Stripe secret and restricted keys
    r"SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}",  # SendGrid
    r"npm_[A-Za-z0-9]{36}",  # npm
    r"pypi-AgE[A-Za-z0-9_-]{40,}",  # PyPI upload tokens
    r"hf_[A-Za-z0-9]{30,}",  # Hugging Face
    r"sq0(?:atp|csp)-[0-9A-Za-z_-]{22,}",  # Square
    r"SK[0-9a-f]{32}",  # Twilio API key sids
    r"[0-9a-f]{32}-us\d{1,2}",  # Mailchimp
    r"\d{8,10}:AA[0-9A-Za-z_-]{33}",  # Telegram bot tokens
    r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JSON Web Tokens
)
_TOKEN = re.compile(r"(?<![\w-])(?:" + "|".join(_TOKEN_FORMATS) + r")(?![\w-])")
# Substrings one of those formats contains: a text without any skips the slow scan.
_TOKEN_MARKS = (
    "sk-",
    "AKIA",
    "ASIA",
    "ABIA",
    "ACCA",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "_pat_",
    "glpat-",
    "xox",
    "xapp-",
    "AIza",
    "_live_",
    "_test_",
    "SG.",
    "npm_",
    "pypi-",
    "hf_",
    "sq0",
    "SK",
    "-us",
    ":AA",
    "eyJ",
)
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.*?"
    r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
    re.DOTALL,
)
# scheme://user:password@host: the password goes, the user and host stay.
_URL_PASSWORD = re.compile(r"(?<=://)([^\s:/?#@\"']+):[^\s/?#@\"']+(?=@)")
# An Authorization header's credentials, in any casing, as a header, JSON or a dict.
_AUTH_HEADER = re.compile(
    r"(?i)((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?"
    r"(?:(?:bearer|basic|token|digest|apikey)\s+)?)[^\s\"',;]+"
)
_BEARER = re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/-]{16,}=*")
# key = value, key: value, "key": "value" where key names a credential.
_PASSWORD_WORDS = r"password|passwd|passphrase|pwd"
_SECRET_WORDS = (
    r"secret|token|api[_-]?key|apikey|access[_-]?key|secret[_-]?key|private[_-]?key"
    r"|auth[_-]?key|client[_-]?secret|credentials?|account[_-]?key|signature"
)
# Found operator first (a fast scan), then the key just before it and the value after.
_OPERATOR = re.compile(r"(?<![=!<>:])(?::=|=>|=(?!=)|:(?!//|:))")
_KEY_BEFORE = re.compile(  # the key may have a prefix: DB_PASSWORD, x-api-key, app.secret
    rf"(?i)(?<![A-Za-z0-9])(?P<word>{_PASSWORD_WORDS}|{_SECRET_WORDS})[\"']?[ \t]*\Z"
)
_VALUE_AFTER = re.compile(
    r"[ \t]*(?:\"(?P<dq>[^\"\n]*)\"|'(?P<sq>[^'\n]*)'|(?P<bare>[^\s\"',;)}\]]*[^\s\"',;)}\].]))"
)
_KEY_WINDOW = 40  # characters before an operator searched for the key
_KEY_MARKS = ("pass", "pwd", "secret", "token", "key", "credential", "signature")
_NOT_SECRET = re.compile(r"(?i)\d{1,6}|true|false|null|none|nil|undefined|\**|x+|\[secret\]|")


def secrets(text: str) -> str:
    """Replace credentials with ``[SECRET]``.

    Found: API keys and tokens in their issuers' formats (OpenAI, Anthropic, AWS,
    GitHub, GitLab, Slack, Google, Stripe, SendGrid, npm, PyPI, Hugging Face, Square,
    Twilio, Mailchimp, Telegram), JSON Web Tokens, PEM private-key blocks, the password
    of a ``scheme://user:password@host`` URL, ``Authorization:`` header values and
    ``Bearer`` tokens, and the value assigned to a credential-named key
    (``password=hunter2``, ``"api_key": "..."``, ``client_secret: ...``,
    ``token: 0123...``). A value after ``key:`` must look like a secret (contain a digit,
    or be quoted, or be 8 characters or longer) unless the key names a password, so prose
    such as "each token: a word piece" is left alone; counts (``max_token=100``),
    booleans and ``null`` are never masked.
    """
    # Each scan runs only when the text holds what it looks for: most texts hold none.
    if "PRIVATE KEY-----" in text:
        text = _PRIVATE_KEY.sub(SECRET, text)
    if any(mark in text for mark in _TOKEN_MARKS):
        text = _TOKEN.sub(SECRET, text)
    if "://" in text and "@" in text:
        text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{SECRET}", text)
    lowered = text.lower()
    if "authorization" in lowered:
        text = _AUTH_HEADER.sub(lambda m: m.group(1) + SECRET, text)
    if "bearer" in lowered:
        text = _BEARER.sub(lambda m: m.group(1) + SECRET, text)
    if any(mark in lowered for mark in _KEY_MARKS) and ("=" in text or ":" in text):
        text = _mask_assignments(text)
    return text


def _mask_assignments(text: str) -> str:
    pieces: list[str] = []
    done = 0
    for op in _OPERATOR.finditer(text):
        if op.start() < done:
            continue  # inside a value already masked
        window = max(done, op.start() - _KEY_WINDOW)
        nearby = text[window : op.start()].lower()
        if not any(mark in nearby for mark in _KEY_MARKS):
            continue  # the common case (times, URLs, prose), decided without the regex
        key = _KEY_BEFORE.search(text, window, op.start())
        value = _VALUE_AFTER.match(text, op.end()) if key else None
        if key is None or value is None or not _is_secret_value(key["word"], op.group(), value):
            continue
        group = next(g for g in ("dq", "sq", "bare") if value[g] is not None)
        pieces += [text[done : value.start(group)], SECRET]
        done = value.end(group)
    return "".join(pieces) + text[done:] if pieces else text


def _is_secret_value(word: str, operator: str, value: re.Match[str]) -> bool:
    text = next(v for v in (value["dq"], value["sq"], value["bare"]) if v is not None)
    if _NOT_SECRET.fullmatch(text):
        return False
    if operator != ":" or value["bare"] is None:
        return True
    return re.fullmatch(_PASSWORD_WORDS, word, re.IGNORECASE) is not None or _looks_secret(text)


def _looks_secret(value: str) -> bool:
    return len(value) >= 8 or any(ch.isdigit() for ch in value)


api_keys = secrets  # the earlier name, kept for existing code


# -- card numbers ---------------------------------------------------------------------------

# A run of digits, spaces and hyphens (a fast scan); the run's groups are then tried.
_CARD_RUN = re.compile(r"\d[\d -]{10,}\d")
# Issuer prefixes (IIN ranges) and the lengths each network issues.
_CARD_NETWORKS = (
    (re.compile(r"4"), (13, 16, 19)),  # Visa
    (re.compile(r"5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)"), (16,)),  # Mastercard
    (re.compile(r"3[47]"), (15,)),  # American Express
    (re.compile(r"6011|64[4-9]|65|62"), (16, 17, 18, 19)),  # Discover, UnionPay
    (re.compile(r"35(?:2[89]|[3-8]\d)"), (16, 17, 18, 19)),  # JCB
    (re.compile(r"3(?:0[0-59]|[689])"), (14, 15, 16, 17, 18, 19)),  # Diners Club
    (re.compile(r"5[06-9]|6\d"), (12, 13, 14, 15, 16, 17, 18, 19)),  # Maestro
)


def credit_cards(text: str) -> str:
    """Replace payment card numbers with ``[CARD]``.

    A card number has 12 to 19 digits, written together or in groups split by one kind
    of separator (spaces or hyphens), starts with a card network's issuer prefix, has a
    length that network issues, and passes the Luhn check. ISBNs, UUIDs, phone numbers
    and order numbers that fail any of these are left alone.
    """
    if not _has_digits(text):
        return text
    return _CARD_RUN.sub(_mask_card_run, text)


def _mask_card_run(run: re.Match[str]) -> str:
    if _glued(run):
        return run.group()
    return _replace_groups(run.group(), _is_card, CARD, max_digits=19)


def _replace_groups(
    run: str, accept: Callable[[str, str], bool], placeholder: str, *, max_digits: int
) -> str:
    """``run`` with each longest span of whole space-separated groups that ``accept``
    takes (given the span and its digits) replaced by ``placeholder``: a number may sit
    next to other numbers in one run."""
    spans = [(m.start(), m.end()) for m in re.finditer(r"[^ \t]+", run)]
    digits = [_digits(run[a:b]) for a, b in spans]
    pieces: list[str] = []
    done = i = 0
    while i < len(spans):
        found = None
        joined = ""
        for j in range(i, len(spans)):
            joined += digits[j]
            if len(joined) > max_digits:
                break
            if accept(run[spans[i][0] : spans[j][1]], joined):
                found = j
        if found is None:
            i += 1
            continue
        pieces += [run[done : spans[i][0]], placeholder]
        done = spans[found][1]
        i = found + 1
    return "".join(pieces) + run[done:]


_NO_DIGITS = str.maketrans("", "", "0123456789")


_NOT_DIGIT = re.compile(r"\D+")


def _digits(text: str) -> str:
    return _NOT_DIGIT.sub("", text)


def _glued(run: re.Match[str]) -> bool:
    """Whether a run of digits is part of a longer token (a word, a UUID, a version)."""
    text, start, end = run.string, run.start(), run.end()
    before = text[start - 1] if start else " "
    after = text[end : end + 2] + "  "
    return (
        before.isalnum()
        or before in _GLUED
        or after[0].isalnum()
        or after[0] in "-_"
        or (after[0] == "." and after[1].isdigit())
    )


def _is_card(candidate: str, digits: str) -> bool:
    if not 12 <= len(digits) <= 19:
        return False
    if len(set(candidate.translate(_NO_DIGITS))) > 1:
        return False  # mixed separators: not how a card number is written
    networks = (lengths for prefix, lengths in _CARD_NETWORKS if prefix.match(digits))
    return any(len(digits) in lengths for lengths in networks) and _luhn(digits)


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        digit = int(ch) * (2 if i % 2 else 1)
        total += digit - 9 if digit > 9 else digit
    return total % 10 == 0


# -- phone numbers --------------------------------------------------------------------------

# A run of digits and phone punctuation with at least 7 digits. Only runs not glued to a
# word, a hyphenated code (UUIDs, ISBNs) or a dotted one (versions, IP addresses), and
# plausible by the number plan of some region, are handed to libphonenumber, which decides.
_PHONE_CANDIDATE = re.compile(r"(?:\+[ \t]?)?\(?\d[\d \t().\-/]{5,}\d\)?")
_GLUED = frozenset("._+/-")
_ISO_DATE_TIME = re.compile(r"\d{4}-\d\d-\d\d(?:[ T]\d\d[:.]\d\d(?:[:.]\d\d)?)?")


@dataclass(frozen=True)
class _Plan:
    """What a region's national numbers look like, from libphonenumber's metadata."""

    numbers: re.Pattern[str]  # every valid national number matches this
    prefix: re.Pattern[str] | None  # the national (trunk) prefix, as written before a number
    exact: bool  # False: the prefix is rewritten, not just dropped; always ask libphonenumber

    def admits(self, digits: str) -> bool:
        if not self.exact or self.numbers.fullmatch(digits):
            return True
        found = self.prefix.match(digits) if self.prefix is not None else None
        return bool(found and found.end() and self.numbers.fullmatch(digits[found.end() :]))


def _plan(metadata: phonenumbers.PhoneMetadata, numbers: str | None) -> _Plan:
    prefix = metadata.national_prefix_for_parsing or metadata.national_prefix
    return _Plan(
        numbers=re.compile(numbers or r"\d+"),
        prefix=re.compile(prefix) if prefix else None,
        exact=metadata.national_prefix_transform_rule is None,
    )


def _plans() -> tuple[dict[str, _Plan], dict[int, list[_Plan]]]:
    by_region: dict[str, _Plan] = {}
    by_code: dict[int, list[_Plan]] = {}
    for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        for region in regions:
            metadata = (
                phonenumbers.PhoneMetadata.metadata_for_nongeo_region(code)
                if region == "001"
                else phonenumbers.PhoneMetadata.metadata_for_region(region)
            )
            if metadata is None or metadata.general_desc is None:
                continue
            plan = _plan(metadata, metadata.general_desc.national_number_pattern)
            by_region.setdefault(region, plan)
            by_code.setdefault(code, []).append(plan)
    return by_region, by_code


_BY_REGION, _BY_CODE = _plans()


def phone_numbers_in(*regions: str) -> Callable[[str], str]:
    """A masker replacing phone numbers with ``[PHONE]``: international numbers
    (``+44 20 7946 0958``) of any country, and national ones (``020 7946 0958``) of the
    given regions (ISO 3166 codes such as ``"GB"``, ``"FR"``).

    A number must be valid by libphonenumber's rules for its country (length, prefixes,
    number ranges), so dates, versions, IP addresses, UUIDs, ISBNs and prices are left
    alone. Raises ``ValueError`` for a region libphonenumber does not know.
    """
    unknown = [r for r in regions if r.upper() not in phonenumbers.SUPPORTED_REGIONS]
    if unknown:
        raise ValueError(f"unknown phone regions {unknown}; use ISO 3166 codes such as 'GB'")
    chosen = tuple(dict.fromkeys(r.upper() for r in regions))
    plans = [_BY_REGION[r] for r in chosen]

    def mask(text: str) -> str:
        if not _has_digits(text):
            return text
        return _PHONE_CANDIDATE.sub(lambda m: _mask_phones(m, chosen, plans), text)

    mask.__doc__ = f"Replace phone numbers (international, and national of {chosen}) with [PHONE]."
    return mask


def _mask_phones(match: re.Match[str], regions: Sequence[str], plans: Sequence[_Plan]) -> str:
    candidate = match.group()
    if _glued(match) or _ISO_DATE_TIME.fullmatch(candidate):
        return candidate
    closing = ""
    if candidate.endswith(")") and candidate.count("(") < candidate.count(")"):
        candidate, closing = candidate[:-1], ")"  # the prose's parenthesis, not the number's
    if " " not in candidate and "\t" not in candidate:  # one group: most candidates
        return (
            PHONE if _is_phone(candidate, _digits(candidate), regions, plans) else candidate
        ) + closing

    def accept(piece: str, digits: str) -> bool:
        return _is_phone(piece, digits, regions, plans)

    return _replace_groups(candidate, accept, PHONE, max_digits=17) + closing


def _is_phone(piece: str, digits: str, regions: Sequence[str], plans: Sequence[_Plan]) -> bool:
    """Whether ``piece`` is a valid phone number: international (after ``+``), or national
    of one of ``regions``. The number plans (``plans``, one per region) rule out most
    pieces cheaply; libphonenumber decides the rest."""
    if not 7 <= len(digits) <= 17:
        return False
    if piece.lstrip("(").startswith("+"):
        return _international(digits) and _valid_phone(piece, None)
    return any(
        plan.admits(digits) and _valid_phone(piece, region)
        for region, plan in zip(regions, plans, strict=True)
    )


@functools.lru_cache(maxsize=4096)  # a chat re-sends its history: the same numbers recur
def _valid_phone(piece: str, region: str | None) -> bool:
    try:
        number = phonenumbers.parse(piece, region)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number)


def _international(digits: str) -> bool:
    for length in (1, 2, 3):
        plans = _BY_CODE.get(int(digits[:length]))
        if plans:
            return any(plan.admits(digits[length:]) for plan in plans)
    return False


def _has_digits(text: str) -> bool:
    return any(digit in text for digit in "0123456789")


phone_numbers = phone_numbers_in("US")
phone_numbers.__doc__ = (
    "Replace phone numbers with ``[PHONE]``: international numbers of any country "
    "(``+44 20 7946 0958``) and North American ones without a prefix (``(415) 555-2671``). "
    "For other countries' national formats use :func:`phone_numbers_in`."
)


# -- composing ------------------------------------------------------------------------------


def compose(*maskers: Callable[[str], str]) -> Callable[[str], str]:
    """One masker applying each of ``maskers`` in order."""

    def masked(text: str) -> str:
        for mask in maskers:
            text = mask(text)
        return text

    return masked


default = compose(secrets, emails, credit_cards, phone_numbers)
default.__doc__ = "Masks secrets, e-mail addresses, card numbers and phone numbers, in that order."
