"""Handles: random, pronounceable ones such as `quiet-falcon-27` (never derived from a
number), the ones texters choose with NAME, and the form every handle is compared in.

Two handles that look alike are one handle: `key` is their confusable skeleton (Unicode
TR39, from the Unicode Consortium's confusables data that `confusable-homoglyphs` ships),
taken after NFKC and case folding, so `@quiet-fa1con-27`, `@quiet-faIcon-27`, Cyrillic
`@quiet-fаlcon-27` and `@ＱＵＩＥＴ-falcon-27` are all `@quiet-falcon-27`, and `@rn` is `@m`.
The handle index is keyed by it: no one can register a look-alike of a handle in use, or of
a reserved word (`reserved.py`). A freed handle (after NAME or FORGET ME) stays unavailable
to others for HOLD_SECONDS.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
import unicodedata

from confusable_homoglyphs import confusables

from gateway.microblog import reserved
from gateway.store import keys

ADJECTIVES = (
    "amber azure bold brave bright calm clever cool crisp daring deep eager early fair fast "
    "fierce gentle glad golden grand green happy honest humble keen kind light lively loyal "
    "lucky mellow merry mighty misty noble proud quick quiet rapid rare red silent silver "
    "simple sly smooth snowy solar steady still sunny swift tall tidy true vivid warm wild wise"
).split()
ANIMALS = (
    "badger bear bison crane crow deer dove eagle falcon finch fox gazelle hare hawk heron "
    "ibex jackal kestrel kite lark leopard lion lynx magpie marten owl panther parrot pelican "
    "pigeon plover quail raven robin sparrow stork swallow swan swift tiger turtle viper wolf "
    "wren yak zebra"
).split()

# Handles people choose with NAME: letters of any script, digits, "_" and inner "-".
_VALID = re.compile(r"^[^\W_](?:[\w-]{1,28})[^\W-]$|^[^\W_][^\W-]$")
# Invisible characters that reorder or join text (bidi embeddings, overrides and isolates,
# marks, zero-width spaces and joiners): taken out of a handle before anything else, so
# none can make one handle display as another.
_INVISIBLE = re.compile("[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
HOLD_SECONDS = 30 * 24 * 3600  # a freed handle stays unavailable to others this long
# Handles one texter may hold at once by renaming (NAME): each rename holds the old one for
# HOLD_SECONDS, so without a cap one texter could keep any list of names from everyone.
MAX_HELD = 3


def random_handle(digits: int = 2) -> str:
    """A fresh candidate; the caller checks uniqueness. One draw of 64 random bits picks
    its three parts (a registration tries eight: one system call each, not three)."""
    draw = secrets.randbits(64)
    draw, adjective = divmod(draw, len(ADJECTIVES))
    draw, animal = divmod(draw, len(ANIMALS))
    return f"{ADJECTIVES[adjective]}-{ANIMALS[animal]}-{draw % 10**digits:0{digits}d}"


PAIRS = len(ADJECTIVES) * len(ANIMALS)  # handles with d digits: PAIRS × 10**d


def digits_for(population: int) -> int:
    """Digits for new handles among `population` texters: at least 2, and enough that there
    are ten handles of that length for each texter, so a random one is free nine times in
    ten however many have registered."""
    digits = 2
    while PAIRS * 10**digits < 10 * population:
        digits += 1
    return digits


def candidates(count: int = 8, population: int = 0) -> list[str]:
    """`count` candidates for a new texter among `population`, one more digit every three
    down the list, so that all of them are taken is rarer still."""
    first = digits_for(population)
    return [random_handle(first + i // 3) for i in range(count)]


def clean(handle: str) -> str:
    """A handle as written, less any "@" before it and the invisible characters in it."""
    return _INVISIBLE.sub("", handle.strip()).lstrip("@＠")


@functools.cache
def _prototype_table() -> dict[int, str]:
    """`_prototypes` as a table for str.translate (a handle's key is taken for each of the
    eight candidates a first-time texter is offered)."""
    return {ord(char): target for char, target in _prototypes().items()}


@functools.cache
def _prototypes() -> dict[str, str]:
    """Each confusable character -> the prototype it is confused with (TR39's mapping).

    The library stores each pair both ways (prototype -> its look-alikes, look-alike ->
    [prototype]). A prototype has many look-alikes or is a sequence ("rn" for "m"); the
    few pairs of two single characters that only look like each other map to the smaller,
    which puts both in one class as the skeleton does."""
    marks = str.maketrans("", "", "\u200e\u200f")  # the data's direction marks around RTL glyphs
    data = confusables.confusables_data
    pairs = {k.translate(marks): [e["c"].translate(marks) for e in v] for k, v in data.items()}
    found: dict[str, str] = {}
    for char, alikes in pairs.items():
        if len(char) != 1 or len(alikes) != 1:
            continue  # a prototype
        target = alikes[0]
        if len(target) > 1 or len(pairs.get(target, ())) > 1:
            found[char] = target
        elif target < char:
            found[char] = target
    return found


def _skeleton(text: str) -> str:
    mapped = unicodedata.normalize("NFD", text).translate(_prototype_table())
    return unicodedata.normalize("NFD", mapped)


def key(handle: str) -> str:
    """The form handles are compared and indexed in: equal for handles that look alike.
    The skeleton is taken before and after case folding ("0" looks like "O", and so like
    "o"); "I" looks like "l" and is "i" in lower case, so the three are one letter here;
    "_" counts as "-"."""
    folded = _skeleton(unicodedata.normalize("NFKC", clean(handle))).casefold()
    return _skeleton(folded).casefold().translate(_ONE_LETTER)


_ONE_LETTER = str.maketrans({"i": "l", "_": "-"})


def _squashed(word: str) -> str:
    return key(word.replace(" ", "")).replace("-", "")


_RESERVED = frozenset(_squashed(w) for w in (*reserved.WORDS, *reserved.AUTHORITY))
_AUTHORITY = tuple(_squashed(w) for w in reserved.AUTHORITY)
_BRANDS = tuple(_squashed(w) for w in reserved.BRANDS)


def is_reserved(handle: str) -> bool:
    """Whether a handle is, or passes for, one of the reserved words (`reserved.py`)."""
    whole = key(handle)
    squashed = whole.replace("-", "")
    if squashed in _RESERVED or any(brand in squashed for brand in _BRANDS):
        return True
    return any(part.startswith(_AUTHORITY) for part in whole.split("-") if part)


def is_valid(handle: str) -> bool:
    """Whether a chosen handle (`clean`ed) is acceptable: 2–30 letters or digits of any
    script with "-" or "_" inside, not reserved."""
    return bool(_VALID.match(handle)) and not is_reserved(handle)


def hold_key(handle: str) -> str:
    """The key holding a freed handle for HOLD_SECONDS: named by a digest of its `key`, so
    a forgotten texter's handle is not spelled out in Redis while it waits."""
    return hold_key_of(key(handle))


def hold_key_of(handle_key: str) -> str:
    """`hold_key` for a handle whose `key` is already known."""
    return keys.handle_hold(hashlib.sha256(handle_key.encode()).hexdigest()[:32])
