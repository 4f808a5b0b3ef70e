"""The words that make a text a command, in every language Kabootar answers in.

One table, easy to extend: add a word under its command and language. A word may be
listed under several languages (Persian and Arabic share `حذف` and `توقف`); the texter's
script then decides which language the answer is in. Matching ignores case, the
Arabic/Persian spelling variants of yeh, kaf and alef, tatweel and zero-width
non-joiners (see `normalize`), so a Persian word typed on an Arabic keyboard matches.
"""

from __future__ import annotations

import unicodedata

LANGUAGES = ("en", "fa", "ar")
TRAILING = ".,!?؟،:;"  # punctuation after a word that leaves it the same word ("Stop.", "yes!")

# command -> language -> words (a word may be a phrase of up to three words)
WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "help": {"en": ("HELP", "INFO"), "fa": ("راهنما", "کمک"), "ar": ("مساعدة", "مساعده", "معلومات")},
    "follow": {"en": ("FOLLOW", "F"), "fa": ("دنبال",), "ar": ("تابع", "متابعة")},
    "unfollow": {
        "en": ("UNFOLLOW", "LEAVE"),
        "fa": ("لغو دنبال", "لغودنبال", "دنبال نکن"),
        "ar": ("الغاء المتابعة", "الغاء متابعة", "الغ المتابعة"),
    },
    "get": {"en": ("GET",), "fa": ("آخرین", "بگیر"), "ar": ("آخر", "هات")},
    "whois": {"en": ("WHOIS",), "fa": ("کیست", "کیه"), "ar": ("من هو", "منهو")},
    "name": {"en": ("NAME",), "fa": ("تغییر نام", "تغییرنام"), "ar": ("تغيير الاسم", "الاسم")},
    "bio": {"en": ("BIO",), "fa": ("بیو", "درباره من"), "ar": ("بايو", "نبذة")},
    "off": {"en": ("OFF",), "fa": ("خاموش",), "ar": ("ايقاف مؤقت", "اطفاء")},
    "on": {"en": ("ON",), "fa": ("روشن",), "ar": ("تشغيل",)},
    "delete": {"en": ("DELETE",), "fa": ("حذف", "پاک کن"), "ar": ("حذف", "امسح")},
    "stats": {"en": ("STATS",), "fa": ("آمار",), "ar": ("احصائيات", "إحصاءات")},
    "forget": {"en": ("FORGET ME",), "fa": ("فراموشم کن", "فراموشم کنید"), "ar": ("انسني", "انساني")},
    "stop": {
        "en": ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"),
        "fa": ("توقف", "لغو", "لغو عضویت"),
        "ar": ("توقف", "الغاء", "ايقاف", "الغاء الاشتراك"),
    },
    "start": {"en": ("START", "YES", "UNSTOP"), "fa": ("شروع", "ادامه"), "ar": ("ابدأ", "ابدا", "بدء")},
    "dm": {"en": ("D", "DM"), "fa": ("پیام", "خصوصی"), "ar": ("رسالة", "خاص")},
}

# The answers that confirm a question Kabootar asked (FORGET ME's "reply YES"). Only while
# such a question waits: otherwise YES is START's, and the others are ordinary words.
YES: dict[str, tuple[str, ...]] = {"en": ("YES",), "fa": ("بله", "بلی", "آره"), "ar": ("نعم", "أجل")}

# Spelling variants people type interchangeably, mapped to one form for matching only.
_SAME = str.maketrans(
    {
        "ي": "ی",  # Arabic yeh -> Persian yeh
        "ى": "ی",  # alef maksura
        "ك": "ک",  # Arabic kaf -> Persian kaf
        "أ": "ا",
        "إ": "ا",
        "آ": "ا",
        "ٱ": "ا",
        "ة": "ه",
        "ـ": None,  # tatweel, a stretch with no meaning
        "\u200c": " ",  # zero-width non-joiner: "فراموشم‌کن" matches "فراموشم کن"
    }
)


def normalize(words: str) -> str:
    """The matching form of a command word or phrase."""
    folded = unicodedata.normalize("NFKC", words).casefold().translate(_SAME)
    return " ".join(folded.split())


def _index() -> dict[str, tuple[str, frozenset[str]]]:
    """normalized word -> (command, languages it belongs to). Fails loudly on a clash."""
    index: dict[str, tuple[str, frozenset[str]]] = {}
    for command, by_language in WORDS.items():
        for language, words in by_language.items():
            assert language in LANGUAGES, language
            for word in words:
                key = normalize(word)
                known_command, languages = index.get(key, (command, frozenset()))
                if known_command != command:
                    raise ValueError(f"{word!r} is both {known_command} and {command}")
                index[key] = (command, languages | {language})
    return index


INDEX = _index()
LONGEST = max(len(key.split()) for key in INDEX)


_YES = frozenset(normalize(word) for words in YES.values() for word in words)


def is_yes(text: str) -> bool:
    """Whether a text is a yes-word alone (any language, any case; "yes!" too)."""
    return normalize(text).rstrip(TRAILING) in _YES


def lookup(words: str) -> tuple[str, frozenset[str]] | None:
    """The command a word or phrase stands for, and its languages; None if it is no command."""
    return INDEX.get(normalize(words))
