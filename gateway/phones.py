"""Phone numbers: normalised, encrypted at rest, looked up by a keyed hash, masked in logs.

A texter's number is the most sensitive thing Kabootar holds. It is encrypted with
Fernet (AES-128-CBC with an HMAC) before it touches Redis, and indexed by an HMAC so that a
lookup never needs the plaintext; both keys are derived from SECRET_KEY with HKDF.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import phonenumbers
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def normalize(number: str) -> str:
    """E.164 form of a number a provider gave us; short codes and sender ids stay as they are."""
    raw = number.strip()
    if _E164.match(raw):
        return raw  # what providers send: already normal, and phonenumbers is slow to say so
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        return raw
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


# What a written phone number may hold: digits, one leading "+", and the spaces, dots,
# dashes and brackets people write between digit groups. phonenumbers alone would read
# far more: "abc+98…" (it skips the letters), "+1-800-FLOWERS" (vanity letters as digits),
# "… ext. 5" (an extension).
_WRITTEN = re.compile(r"\+?[0-9(][0-9 ().-]{0,30}")
# The prefixes a provider writes before a number to say which of its channels a text came
# through (Twilio's "whatsapp:+98…"). The person is the number; the prefix is the way back.
CHANNEL_PREFIXES = ("whatsapp",)


def to_e164(raw: str, region: str | None = None) -> str | None:
    """The E.164 form of a number a provider reported in whatever format ("+98 912 …",
    "09121234567" with its `region`, "00989…"); None when it is not a possible phone number
    (letters, control characters, an extension, too short or too long)."""
    written = raw.strip()
    if not _WRITTEN.fullmatch(written):
        return None
    try:
        parsed = phonenumbers.parse(written, (region or "").upper() or None)
    except phonenumbers.NumberParseException:
        return None
    if parsed.extension or not phonenumbers.is_possible_number(parsed):
        return None
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return e164 if _E164.match(e164) else None


def split_prefix(address: str) -> tuple[str, str]:
    """("whatsapp", "+98…") for "whatsapp:+98…"; ("", address) when it names no known channel."""
    prefix, colon, rest = address.strip().partition(":")
    if colon and prefix.lower() in CHANNEL_PREFIXES:
        return prefix.lower(), rest
    return "", address


def region_of(number: str) -> str | None:
    """The ISO country of an international number (`+98…` -> "IR"), None when unknown."""
    try:
        found = phonenumbers.region_code_for_number(phonenumbers.parse(number.strip(), None))
    except phonenumbers.NumberParseException:
        return None
    return found if found and found != "ZZ" else None


MIN_MASKED_DIGITS = 7  # shorter is a short code or a fragment: nothing of it is shown


def mask(number: str) -> str:
    """What a log line may show of a number: its country code and last two digits
    (`+98•••67`), never more. A number without a readable country code shows its last two
    digits alone (`•••67`); a short one shows nothing (`•••`)."""
    digits = re.sub(r"\D", "", number)
    if len(digits) < MIN_MASKED_DIGITS:
        return "•••"
    country = _country_code(number)
    return f"+{country}•••{digits[-2:]}" if country else f"•••{digits[-2:]}"


def country_code(number: str) -> str:
    """All that the console's history may show of a number: its country code ("+98"), or
    "" when it has none we can read. Read from the number's first digits (calling codes are
    prefix-free), not by parsing it all: this runs for every text the webhook stores."""
    if not number.startswith("+"):
        return ""
    digits = number[1:4]
    for n in (1, 2, 3):
        if digits[:n].isdigit() and int(digits[:n]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return f"+{digits[:n]}"
    return ""


def _country_code(number: str) -> int | None:
    """The country calling code of an international number (`+98…` -> 98), else None."""
    if not number.strip().startswith("+"):
        return None
    try:
        return phonenumbers.parse(number, None).country_code or None
    except phonenumbers.NumberParseException:
        return None


_PHONE_LIKE = re.compile(r"\+?\d[\d\s().-]{6,}\d")


def redact(text: str) -> str:
    """Mask anything that looks like a phone number in free text (exception messages, logs)."""
    return _PHONE_LIKE.sub(lambda m: mask(re.sub(r"[^\d+]", "", m.group())), text)


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"kabootar", info=purpose).derive(secret.encode())


class PhoneVault:
    """Encrypts, decrypts and hashes phone numbers with keys derived from one secret."""

    def __init__(self, secret_key: str) -> None:
        if not secret_key:
            raise ValueError("a secret key is required to protect phone numbers")
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(secret_key, b"phone-encryption")))
        self._hmac_key = _derive(secret_key, b"phone-lookup")

    def lookup_key(self, number: str) -> str:
        """Keyed hash of the normalised number: the only form used to find a subscriber."""
        return self._lookup_key(normalize(number))

    def encrypt(self, number: str) -> str:
        return self._encrypt(normalize(number))

    def protect(self, number: str) -> tuple[str, str]:
        """(lookup key, ciphertext) of a number, normalising it once."""
        normal = normalize(number)
        return self._lookup_key(normal), self._encrypt(normal)

    def _lookup_key(self, normal: str) -> str:
        digest = hmac.new(self._hmac_key, normal.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()

    def _encrypt(self, normal: str) -> str:
        return self._fernet.encrypt(normal.encode()).decode()

    def decrypt(self, token: str) -> str:
        return self._fernet.decrypt(token.encode()).decode()
