"""What a post's text carries: #tags and @mentions, in any script.

Tags and mentions are kept as written for display and case-folded (after NFKC) for
lookup, so `#IranElection` and `#iranelection` are one tag, and `#انتخابات` works
like any other. Persian words may hold a zero-width non-joiner and combining marks.
"""

from __future__ import annotations

import re
import unicodedata

# A word character, the zero-width non-joiner, or a combining mark (Arabic harakat etc.).
_WORD = r"[\w\u200c\u0300-\u036f\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed]"
TAG_PATTERN = re.compile(rf"(?<![\w&])[#＃]({_WORD}+)")
MENTION_PATTERN = re.compile(rf"(?<![\w])[@＠]({_WORD}(?:{_WORD}|-(?={_WORD}))*)")


def fold(word: str) -> str:
    """The lookup form of a tag or handle."""
    return unicodedata.normalize("NFKC", word).casefold().strip("_\u200c")


def _unique(words: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for word in words:
        seen.setdefault(fold(word), word)
    return [w for w in seen.values() if fold(w)]


def tags(text: str) -> list[str]:
    """The #tags in `text`, as written, first occurrence of each."""
    return _unique(TAG_PATTERN.findall(text))


def mentions(text: str) -> list[str]:
    """The @handles in `text`, as written, first occurrence of each."""
    return _unique(MENTION_PATTERN.findall(text))
