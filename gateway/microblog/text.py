"""What a post's text carries: #tags and @mentions, in any script.

Tags and mentions are kept as written for display and case-folded (after NFKC) for
lookup, so `#IranElection` and `#iranelection` are one tag, and `#انتخابات` works
like any other. Persian words may hold a zero-width non-joiner and combining marks.

What is indexed is bounded, so one text cannot make thousands of Redis keys: a tag has
at most TAG_MAX characters (a longer one is plain text, neither indexed nor followable),
a post files under its first TAGS_PER_POST tags, and an @word longer than a handle can be
(HANDLE_MAX) names no one.
"""

from __future__ import annotations

import re
import unicodedata

# A word character, the zero-width non-joiner, or a combining mark (Arabic harakat etc.).
_WORD = r"[\w\u200c\u0300-\u036f\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed]"
TAG_PATTERN = re.compile(rf"(?<![\w&])[#＃]({_WORD}+)")
MENTION_PATTERN = re.compile(rf"(?<![\w])[@＠]({_WORD}(?:{_WORD}|-(?={_WORD}))*)")
TAG_MAX = 50  # characters in a tag
TAGS_PER_POST = 10  # tags a post is filed under
HANDLE_MAX = 30  # characters in a handle (`handles.is_valid`)


def fold(word: str) -> str:
    """The lookup form of a tag or handle."""
    return unicodedata.normalize("NFKC", word).casefold().strip("_\u200c")


def _unique(words: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for word in words:
        seen.setdefault(fold(word), word)
    return [w for w in seen.values() if fold(w)]


def tag_fits(tag: str) -> bool:
    """Whether a tag (without its #) is short enough to be indexed and followed."""
    return len(fold(tag)) <= TAG_MAX


def tags(text: str) -> list[str]:
    """The #tags in `text` a post is filed under, as written: the first occurrence of each,
    the first TAGS_PER_POST of those that fit."""
    return [t for t in _unique(TAG_PATTERN.findall(text)) if tag_fits(t)][:TAGS_PER_POST]


def mentions(text: str) -> list[str]:
    """The @handles in `text`, as written, first occurrence of each (none longer than a handle)."""
    return [m for m in _unique(MENTION_PATTERN.findall(text)) if len(fold(m)) <= HANDLE_MAX]
