"""Personal data out of what Temporal indexes and shows without a codec.

Workflow ids, search attributes, static summaries and details are stored and displayed in
plain text whatever payload codec runs. What a customer typed may hold a phone number, an
e-mail address, an ID or a card number: `mask` replaces them before such text is shown.
Pure, so the client and the workflow can both use it.
"""

from __future__ import annotations

import re

# Longest first: an ID or card number is also a run of digits a phone pattern would take.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[email]"),
    # Mainland resident ID: 17 digits and a check digit (or X).
    (re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)"), "[id]"),
    # Bank cards: 13-19 digits, maybe grouped by spaces or dashes.
    (re.compile(r"(?<!\d)\d{4}(?:[ -]?\d{4}){2,3}(?:[ -]?\d{1,3})?(?!\d)"), "[card]"),
    # Phones: mainland mobiles, and international or grouped numbers of 7+ digits.
    (re.compile(r"(?<!\d)(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}(?!\d)"), "[phone]"),
    (re.compile(r"(?<![\w])\+?\d(?:[\d -]{5,}\d)(?!\d)"), "[phone]"),
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
