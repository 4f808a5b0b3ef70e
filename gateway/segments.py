"""How many SMS segments a text costs, the way carriers and Twilio count them.

A text that fits the GSM 03.38 alphabet travels as 7-bit septets: 160 in one SMS, 153
per part once it is split (the user data header takes the rest). The extension
characters (^{}\\[~]|€ and form feed) are an escape plus a septet, so they count double,
and a part never ends between the two. Any other character switches the whole text to
UCS-2: 70 UTF-16 units in one SMS, 67 per part; characters outside the Basic
Multilingual Plane (most emoji) are two units and are never split either.
"""

from __future__ import annotations

GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = frozenset("^{}\\[~]|€\f")

GSM_SINGLE, GSM_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


def encoding(text: str) -> str:
    """ "GSM-7" when every character is in the GSM alphabet (with its extension), else "UCS-2"."""
    if all(c in GSM_BASIC or c in GSM_EXTENSION for c in text):
        return "GSM-7"
    return "UCS-2"


def _units(text: str) -> list[int]:
    """The cost of each character in septets (GSM-7) or UTF-16 units (UCS-2)."""
    if encoding(text) == "GSM-7":
        return [2 if c in GSM_EXTENSION else 1 for c in text]
    return [2 if ord(c) > 0xFFFF else 1 for c in text]


def segments(text: str) -> int:
    """How many SMS segments `text` is sent as (at least 1)."""
    gsm = encoding(text) == "GSM-7"
    single, part = (GSM_SINGLE, GSM_PART) if gsm else (UCS2_SINGLE, UCS2_PART)
    units = _units(text)
    if sum(units) <= single:
        return 1
    # Fill parts greedily: an escape pair or a surrogate pair never straddles two parts.
    count, used = 1, 0
    for u in units:
        if used + u > part:
            count, used = count + 1, 0
        used += u
    return count


def truncate(text: str, max_segments: int, suffix: str = "", ellipsis: str | None = None) -> str:
    """`text` unchanged if it fits `max_segments`, else cut to fit with an ellipsis and `suffix`.

    The ellipsis defaults to "…" for UCS-2 texts and "..." for GSM-7 ones, because "…" is
    not in the GSM alphabet: adding it would turn a Latin text into UCS-2 and more
    than double its cost.
    """
    if segments(text) <= max_segments:
        return text
    if ellipsis is None:
        ellipsis = "…" if encoding(text) == "UCS-2" else "..."
    if segments(ellipsis + suffix) > max_segments:
        suffix = ""
    # segments() never shrinks as the prefix grows, so binary search the longest prefix that fits.
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if segments(text[:mid].rstrip() + ellipsis + suffix) <= max_segments:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + ellipsis + suffix
