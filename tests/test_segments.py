"""Segment counting: what each SMS costs, as carriers and Twilio count it."""

from __future__ import annotations

import pytest

from gateway.segments import encoding, segments, truncate

PERSIAN = "س"  # U+0633, in the BMP: one UTF-16 unit
EMOJI = "😀"  # U+1F600, outside the BMP: two UTF-16 units


@pytest.mark.parametrize(
    ("text", "enc", "count"),
    [
        ("", "GSM-7", 1),
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("Héllo @ £5 ¿Qué?", "GSM-7", 1),
        ("{" * 80, "GSM-7", 1),
        ("{" * 81, "GSM-7", 2),
        ("a" * 159 + "€", "GSM-7", 2),
        ("a" * 152 + "[" + "a" * 151, "GSM-7", 2),
        ("a" * 152 + "[" + "a" * 152, "GSM-7", 3),
        ("page\fbreak" + "a" * 150, "GSM-7", 2),
        (PERSIAN * 70, "UCS-2", 1),
        (PERSIAN * 71, "UCS-2", 2),
        (PERSIAN * 134, "UCS-2", 2),
        (PERSIAN * 135, "UCS-2", 3),
        ("سلام به همه #انتخابات", "UCS-2", 1),
        ("a" * 69 + "ê", "UCS-2", 1),
        ("a" * 70 + "ê", "UCS-2", 2),
        (EMOJI * 35, "UCS-2", 1),
        (EMOJI * 36, "UCS-2", 2),
        ("a" * 69 + EMOJI, "UCS-2", 2),
        ("a" * 66 + EMOJI + "a" * 66, "UCS-2", 3),
    ],
    ids=[
        "empty",
        "gsm-160",
        "gsm-161",
        "gsm-306",
        "gsm-307",
        "gsm-accents",
        "extension-80",
        "extension-81",
        "euro-tips-over",
        "escape-pair-not-split",
        "escape-pair-pushes-third",
        "form-feed-counts-double",
        "persian-70",
        "persian-71",
        "persian-134",
        "persian-135",
        "persian-hashtag",
        "one-non-gsm-char-70",
        "one-non-gsm-char-71",
        "emoji-35",
        "emoji-36",
        "emoji-counts-two-units",
        "surrogate-pair-not-split",
    ],
)
def test_segments_and_encoding(text: str, enc: str, count: int):
    assert encoding(text) == enc
    assert segments(text) == count


def test_short_text_is_not_truncated():
    assert truncate("hello", 2, " https://k.test/p/1") == "hello"


@pytest.mark.parametrize(
    ("text", "ellipsis"),
    [("word " * 100, "..."), ("سلام " * 100, "…"), (EMOJI * 200, "…")],
    ids=["latin-keeps-gsm", "persian", "emoji"],
)
def test_long_text_is_cut_to_fit_with_ellipsis_and_link(text: str, ellipsis: str):
    link = " https://k.test/p/12"
    cut = truncate(text, 2, link)
    assert segments(cut) <= 2
    assert cut.endswith(ellipsis + link)
    assert text.startswith(cut.removesuffix(ellipsis + link))
    # As long as fits: one more character of the text would not.
    kept = len(cut) - len(ellipsis + link)
    assert segments(text[: kept + 1] + ellipsis + link) > 2 or text[kept].isspace()


def test_latin_text_stays_gsm_when_cut():
    cut = truncate("a" * 400, 2, " https://k.test/p/1")
    assert encoding(cut) == "GSM-7"
    assert len(cut) == 306


def test_a_link_too_long_for_the_limit_is_dropped():
    cut = truncate("a" * 400, 1, " " + "x" * 200)
    assert segments(cut) == 1
    assert cut == "a" * 157 + "..."
