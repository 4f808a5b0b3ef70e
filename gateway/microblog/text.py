"""What a post's text carries: #tags and @mentions, in any script.

Tags and mentions are kept as written for display and case-folded (after NFKC) for
lookup, so `#IranElection` and `#iranelection` are one tag, and `#انتخابات` works
like any other. Persian words may hold a zero-width non-joiner and combining marks.

What is indexed is bounded, so one text cannot make thousands of Redis keys: a tag has
at most TAG_MAX characters (a longer one is plain text, neither indexed nor followable),
a post files under its first TAGS_PER_POST tags, and an @word longer than a handle can be
(HANDLE_MAX) names no one.

It also readies text for readers: a post's body with its direction controls balanced, a
web reader's display name without invisible characters or an "@".
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
    return [t for t in every_tag(text) if tag_fits(t)][:TAGS_PER_POST]


def every_tag(text: str) -> list[str]:
    """Every #tag in `text`, first occurrence of each, whatever its length: what a post
    made before the caps (tags fit and TAGS_PER_POST) may be filed under, to unfile it."""
    return _unique(TAG_PATTERN.findall(text))


def mentions(text: str) -> list[str]:
    """The @handles in `text`, as written, first occurrence of each (none longer than a handle)."""
    return [m for m in _unique(MENTION_PATTERN.findall(text)) if len(fold(m)) <= HANDLE_MAX]


# --- Text shown to readers: display names and bodies ---------------------------------
#
# Explicit bidi formatting characters (UAX #9) open a run that reorders the text after
# them until it is closed: an unclosed RIGHT-TO-LEFT OVERRIDE in a post would reverse
# whatever a page, a feed title or an SMS puts after the post. Classes, not code points,
# come from unicodedata, so no table of ours can miss one.
_OPEN_EMBEDDING = frozenset({"LRE", "RLE", "LRO", "RLO"})  # closed by PDF
_OPEN_ISOLATE = frozenset({"LRI", "RLI", "FSI"})  # closed by PDI
_EXPLICIT = re.compile("[\u202a-\u202e\u2066-\u2069]")  # every one of them, for a quick look
_PDF, _PDI = "\u202c", "\u2069"
# Deeper nesting than this is no writing system's need; Unicode's own limit is 125.
MAX_BIDI_DEPTH = 16
ZWNJ = "\u200c"


def _close(stack: list[str]) -> str:
    """The characters that close every run left open, innermost first."""
    return "".join(_PDI if kind == "isolate" else _PDF for kind in reversed(stack))


def balance_bidi(body: str) -> str:
    """`body` with every embedding, override and isolate closed within its own line, and
    closers that close nothing dropped, so it cannot reorder text placed before or after
    it. Marks (LRM, RLM, ALM) and zero-width joiners stay: they move nothing past the
    post's own text, and Persian is written with them. Balanced text comes back unchanged."""
    if not _EXPLICIT.search(body):
        return body
    out: list[str] = []
    stack: list[str] = []  # "embedding" or "isolate", outermost first
    for char in body:
        kind = unicodedata.bidirectional(char)
        if kind in _OPEN_EMBEDDING or kind in _OPEN_ISOLATE:
            if len(stack) >= MAX_BIDI_DEPTH:
                continue
            stack.append("embedding" if kind in _OPEN_EMBEDDING else "isolate")
        elif kind == "PDF":
            # As in UAX #9: a PDF closes an embedding opened inside the current isolate only.
            if not stack or stack[-1] != "embedding":
                continue
            stack.pop()
        elif kind == "PDI":
            if "isolate" not in stack:
                continue
            while stack[-1] != "isolate":  # a PDI also ends the embeddings inside it
                out.append(_PDF)
                stack.pop()
            stack.pop()
        elif kind == "B":  # a paragraph separator (a newline) ends every run
            out.append(_close(stack))
            stack.clear()
        out.append(char)
    out.append(_close(stack))
    return "".join(out)


def _kept_in_name(name: str, i: int) -> bool:
    """Whether name[i] may stay in a display name: not an "@" of any width, nor a character
    that shows nothing or steers the text (format and control characters), bar a
    zero-width non-joiner between two letters, which Persian spelling needs."""
    char = name[i]
    if "@" in unicodedata.normalize("NFKC", char):
        return False
    if unicodedata.category(char) not in ("Cc", "Cf", "Co", "Cs"):
        return True
    return char == ZWNJ and 0 < i < len(name) - 1 and _letter(name[i - 1]) and _letter(name[i + 1])


def _letter(char: str) -> bool:
    return unicodedata.category(char)[0] in "LM"  # a letter, or a mark on one (harakat)


def display_name(raw: str) -> str:
    """A web reader's chosen name as it may be shown: no invisible or direction-changing
    character, no "@" in any width (a web name must never read as a texter's handle),
    runs of spaces as one."""
    name = " ".join(raw.split())  # newlines and tabs are spaces first, not dropped
    kept = "".join(c for i, c in enumerate(name) if _kept_in_name(name, i))
    return " ".join(kept.split())
