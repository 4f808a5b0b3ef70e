"""Which texts are commands, and what they ask for (the README's command table).

A text that starts with a command word is never posted unless the texter means it: a
command with the right shape is carried out; one that does not fit (extra words after a
word that takes nothing, such as `FORGET ME please` or `Help is needed at the square`;
FOLLOW-like words followed by more than @handles, #tags or one bare name; NAME with more
than one word; `D` without an @handle) is answered "did you mean …?" (`UNCLEAR`), never
carried out nor posted. A text that starts with a quote mark is always a post, so a post
that starts with a command word can be sent again that way. A command word with nothing
after it is still a command, answered with how to use it. The words themselves, in every
language, are in `words.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.commands import words
from gateway.microblog.text import MENTION_PATTERN

NO_ARGUMENT = frozenset({"help", "off", "on", "delete", "stats", "forget", "stop", "start"})
TARGETS = frozenset({"follow", "unfollow", "get", "whois"})
_TRAILING = words.TRAILING  # "Stop." and "help?" are still the keyword
# A text starting with one of these is a post whatever follows: "Help is needed…" sent again.
QUOTES = "\"'«»“”„‘’‹›「"
UNCLEAR = "did_you_mean"  # the problem of a text that starts with a command word but has not its shape
_PERSIAN_ONLY = frozenset("پچژگکی")
_ARABIC_ONLY = frozenset("كيةى")


@dataclass(frozen=True)
class Command:
    """A parsed command. `problem` names what is missing when it cannot be carried out as is."""

    name: str  # a key of words.WORDS, or "reply" for `@handle text`
    language: str | None  # en / fa / ar when the command word tells; None: decide from the text
    targets: tuple[str, ...] = ()  # "@handle", "#tag" or a bare name, as written
    text: str = ""  # a reply's or message's text, a bio, a new handle; the whole text when UNCLEAR
    problem: str = ""  # "" when well formed, UNCLEAR, else the usage answer to give
    keyword: str = ""  # the command word as typed, for answers and a provider's own keywords


def language_of(text: str, fallback: str | None = None) -> str:
    """The language to answer `text` in: its script decides, else `fallback`, else Persian.

    Persian and Arabic share a script; letters only one of them uses tell them apart
    (Persian keyboards type ی and ک, Arabic ones ي and ك).
    """
    letters = [c for c in text if c.isalpha()]
    persian = sum(c in _PERSIAN_ONLY for c in letters)
    arabic = sum(c in _ARABIC_ONLY for c in letters)
    if persian or arabic:
        return "fa" if persian >= arabic else "ar"
    if any("\u0600" <= c <= "\u06ff" or "\ufb50" <= c <= "\ufeff" for c in letters):
        return fallback if fallback in ("fa", "ar") else "fa"
    if any(c.isascii() for c in letters):
        return "en"
    return fallback or "fa"


def _is_target(token: str) -> bool:
    return token[:1] in ("@", "＠", "#", "＃") and len(token) > 1


def _reply(text: str) -> Command | None:
    """`@handle text`: a public reply."""
    match = MENTION_PATTERN.match(text)
    if not match:
        return None
    rest = text[match.end() :]
    if rest and not (rest[0].isspace() or rest[0] in _TRAILING):
        return None  # "@ali's post…" is a post that mentions, not a reply
    body = rest.lstrip(_TRAILING).strip()
    return Command("reply", None, targets=(match.group(1),), text=body, problem="" if body else "reply_usage")


def _split_command(text: str) -> tuple[str, frozenset[str], str, list[str]] | None:
    """The longest command word or phrase at the start, its languages, the word as typed, the rest."""
    tokens = text.split()
    for n in range(min(words.LONGEST, len(tokens)), 0, -1):
        typed = " ".join(tokens[:n]).rstrip(_TRAILING)  # "FORGET ME, please": the phrase still
        found = words.lookup(typed)
        if found:
            return found[0], found[1], typed, tokens[n:]
    return None


def parse(body: str) -> Command | None:
    """The command in a text, or None when the text is a post."""
    text = body.strip()
    if not text or text[0] in QUOTES:
        return None
    if text[0] in ("@", "＠"):
        return _reply(text)
    split = _split_command(text)
    if split is None:
        return None
    name, languages, keyword, rest = split
    language = next(iter(languages)) if len(languages) == 1 else None
    shaped = _shaped(name, language, keyword, rest, text)
    return shaped or Command(name, language, text=text, problem=UNCLEAR, keyword=keyword)


def _shaped(name: str, language: str | None, keyword: str, rest: list[str], text: str) -> Command | None:
    """The command `name` with its arguments `rest`, or None when they are not its shape."""

    def usage() -> Command:
        return Command(name, language, problem=f"{name}_usage", keyword=keyword)

    if name in NO_ARGUMENT:
        return Command(name, language, keyword=keyword) if not rest else None
    if name in TARGETS:
        if not rest:
            return usage()
        if all(_is_target(t) for t in rest):
            return Command(name, language, targets=tuple(rest), keyword=keyword)
        if len(rest) == 1 and re.fullmatch(r"[\w\-]+", rest[0].rstrip(_TRAILING)):
            return Command(name, language, targets=(rest[0],), keyword=keyword)
        return None
    if name == "name":
        if not rest:
            return usage()
        return Command(name, language, text=bare(rest[0]), keyword=keyword) if len(rest) == 1 else None
    if name == "bio":
        bio = text.split(None, len(keyword.split()))[-1] if rest else ""
        return Command(name, language, text=bio, keyword=keyword)
    if name == "dm":
        if not rest:
            return usage()
        if not _is_target(rest[0]) or rest[0][0] not in ("@", "＠"):
            return None
        message = text.split(None, len(keyword.split()) + 1)[-1] if len(rest) > 1 else ""
        problem = "" if message else "dm_usage"
        return Command(name, language, targets=(rest[0],), text=message, problem=problem, keyword=keyword)
    raise AssertionError(f"no shape for command {name}")  # a new word table entry needs a rule here


def takes_arguments(name: str) -> bool:
    """Whether a command takes words after it (FOLLOW @x, NAME x, D @x text…)."""
    return name not in NO_ARGUMENT


def bare(target: str) -> str:
    """A handle or tag without its sigil and trailing punctuation."""
    return target.lstrip("@＠#＃").rstrip(_TRAILING)
