"""Personal data out of what Temporal indexes and shows without a codec.

Workflow ids, search attributes, static summaries and details are stored and displayed in
plain text whatever payload codec runs. What a customer typed may hold a phone number, an
e-mail address, an ID or a card number: `mask` replaces them before such text is shown.
Pure, so the client and the workflow can both use it.
"""

from __future__ import annotations

import re

_ASCII_WORD = r"A-Za-z0-9_"
# Not a phone: dates (2026-11-30) and amounts (1234567 元).
_NOT_A_PHONE = r"(?!\d{4}-\d{1,2}-\d{1,2}(?!\d))"
_NOT_AN_AMOUNT = r"(?!\s*(?:元|块|塊|圆|圓|yuan|RMB|CNY|USD|HKD|TWD))"

# Longest first: an ID or card number is also a run of digits a phone pattern would take.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[email]"),
    # Resident IDs: mainland (17 digits and a check digit or X), Taiwan (A123456789),
    # Hong Kong (A123456(7)).
    (re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)"), "[id]"),
    (re.compile(rf"(?<![{_ASCII_WORD}])[A-Z][12]\d{{8}}(?![{_ASCII_WORD}])"), "[id]"),
    (re.compile(rf"(?<![{_ASCII_WORD}])[A-Z]{{1,2}}\d{{6}}\(?[\dA]\)?(?![{_ASCII_WORD}])"), "[id]"),
    # Bank cards: 13-19 digits, maybe grouped by spaces or dashes.
    (re.compile(r"(?<!\d)\d{4}(?:[ -]?\d{4}){2,3}(?:[ -]?\d{1,3})?(?!\d)"), "[card]"),
    # Phones: mainland mobiles (grouped by spaces, dashes or dots), and landlines,
    # service and international numbers of 7+ digits; a CJK character before one is no
    # part of it (座机01012345678).
    (re.compile(r"(?<!\d)(?:\+?86[ .-]?)?1[3-9]\d(?:[ .-]?\d{4}){2}(?!\d)"), "[phone]"),
    (
        re.compile(
            rf"(?<![{_ASCII_WORD}]){_NOT_A_PHONE}\+?\d(?:[\d .-]{{5,}}\d)(?!\d){_NOT_AN_AMOUNT}"
        ),
        "[phone]",
    ),
)


def mask(text: str) -> str:
    """`text` with e-mail addresses, IDs, card and phone numbers replaced."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def excerpt(text: str, limit: int = 40) -> str:
    """A masked, single-line excerpt of at most `limit` characters."""
    flat = " ".join(mask(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def mask_ip(ip: str) -> str:
    """An IP with its host part hidden: the network stays readable for a fault's region
    (`203.0.113.x`, `2001:db8:85a3:x`)."""
    if ":" in ip:
        return ":".join(ip.split(":")[:3]) + ":x"
    parts = ip.split(".")
    return ".".join(parts[:3]) + ".x" if len(parts) == 4 else "[ip]"
