"""Random, pronounceable handles such as `quiet-falcon-27`, never derived from a number."""

from __future__ import annotations

import re
import secrets

from gateway.microblog.text import fold

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
RESERVED = frozenset({"admin", "ops", "kabootar", "help", "dev", "api", "feed", "tags", "posts"})


def random_handle(digits: int = 2) -> str:
    """A fresh candidate; the caller checks uniqueness."""
    number = secrets.randbelow(10**digits)
    return f"{secrets.choice(ADJECTIVES)}-{secrets.choice(ANIMALS)}-{number:0{digits}d}"


def candidates(count: int = 8) -> list[str]:
    """Candidates with more digits further down the list, so collisions get rarer."""
    return [random_handle(2 + i // 3) for i in range(count)]


def is_valid(handle: str) -> bool:
    """Whether a chosen handle is acceptable: 2–30 characters, not reserved."""
    return bool(_VALID.match(handle)) and fold(handle) not in RESERVED
