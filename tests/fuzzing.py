"""What tests/test_fuzz.py sends: Hypothesis strategies for odd text, fields and bodies,
Twilio's signature over a body as the app will parse it, and a worker run that reports
every job failure. Helpers only; the properties live in the test module.
"""

from __future__ import annotations

import itertools
import urllib.parse
from dataclasses import dataclass
from typing import Any

from flask import Flask, request
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from redis import Redis
from rq.registry import FailedJobRegistry
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.test import TestResponse, encode_multipart

from gateway.commands import words as command_words
from gateway.runtime import Runtime
from gateway.store import queues
from tests.burst import BurstWorker

FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,  # the same examples on every run and in CI
    database=None,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # the fixtures keep no per-example state: see Fresh
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# --- what to send ---------------------------------------------------------------------

# Pieces that break naive code: controls and NUL, bidi and zero-width marks, BOMs and
# non-characters, astral and combining characters, Persian/Arabic letters and digits,
# markup, format strings, and the characters forms and URLs treat specially.
ODD = [
    "\x00", "\x01", "\x07", "\x08", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\x1b", "\x1f", "\x7f",
    "\x85", "\xa0", "\xad", "\u061c", "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u202a",
    "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\u2028",
    "\u2029", "\ufeff", "\ufffd", "\ufffe", "\uffff", "\U0010ffff", "\U0001f54a", "\U0001f1ee\U0001f1f7",
    "e\u0301", "\u0640", "ي", "ی", "ك", "ک", "سلام", "۱۲۳", "٣", "ﷺ", "Ⅻ", "ß", "İ", "ﬁ", "𝟗",
    "#", "@", "＃", "＠", "#tehran", "@ali", "@ali ", "<", ">", "&", '"', "'", "`", "%", "%00", "+",
    "=", ";", "\\", "/", "?", " ", "  ", "_", "-", "<script>window.__pwned=1</script>",
    "{{7*7}}", "%s%n", "${x}", "../", "javascript:alert(1)", "9" * 40, "-0", "1e308",
]  # fmt: skip
COMMAND_WORDS = sorted({w for by_lang in command_words.WORDS.values() for ws in by_lang.values() for w in ws})

odd_text = st.lists(st.one_of(st.sampled_from(ODD), st.text(max_size=6)), max_size=16).map("".join)
# Past every limit: a post's 1,600 characters, a reply's 280, the webhook's 64 KiB.
long_text = st.tuples(st.sampled_from(["x", "ب", "\x00", "\U0001f54a", "%", "&a=b"]), st.integers(0, 70_000))
texts = st.one_of(
    odd_text,
    st.text(),
    st.tuples(st.sampled_from(COMMAND_WORDS), odd_text).map(" ".join),
    long_text.map(lambda t: t[0] * t[1]),
)
numbers = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(
        ["", " 3", "3 ", "٣", "۱۰", "𝟗", "²", "①", "1e9", "0x10", "1_0", "NaN", "inf", "-1", "9" * 5000]
    ),
    odd_text,
)
# Header values cannot hold line breaks (the test client refuses them, as would any server).
header_text = st.text(st.characters(exclude_characters="\r\n", codec="latin-1"), max_size=40)


@dataclass(frozen=True)
class Fresh:
    """A value made unique when sent: `template` with "{}" replaced by a counter."""

    template: str


_COUNTER = itertools.count(1)


def resolve(value: str | Fresh) -> str:
    return value.template.replace("{}", str(next(_COUNTER))) if isinstance(value, Fresh) else value


fresh_sid = st.just(Fresh("SM{}00000000"))
fresh_number = st.just(Fresh("+98912{}"))
message_sids = st.one_of(fresh_sid, fresh_sid, odd_text.map(lambda s: Fresh(s + "{}")), odd_text)
# Always unique (a sender that texts over and over is throttled: tests/test_throttle.py),
# except for the blank ones the webhook must refuse.
senders = st.one_of(
    fresh_number,
    fresh_number,
    odd_text.map(lambda s: Fresh(s + "{}")),
    odd_text.map(lambda s: Fresh("{}" + s)),
    st.sampled_from(["", " ", "\t\n"]),
)

# Raw bytes that percent-decoding and form parsing must survive.
RAW_BITS = [
    b"&", b"&&", b"=", b"==", b"%", b"%z", b"%zz", b"%0", b"%00", b"%ff", b"%FE%FF", b"%ED%A0%80",
    b"%C0%AF", b"%F4%90%80%80", b"+", b";", b"\x00", b"\xff\xfe", b"\xed\xa0\x80", b"\xc3", b"\r\n",
    b"Body=", b"MessageSid=", b"From=%2B", b"a[]=1", b"%26", b"%3D",
]  # fmt: skip
raw_bits = st.lists(st.one_of(st.sampled_from(RAW_BITS), st.binary(max_size=8)), max_size=8).map(b"".join)
CONTENT_TYPES = [
    None, "text/plain", "application/json", "application/xml", "multipart/form-data",
    "multipart/form-data; boundary=", "multipart/form-data; boundary=\x7f", "x/\x7f;;;=",
    "application/x-www-form-urlencoded; charset=latin-1", "application/octet-stream",
    "APPLICATION/X-WWW-FORM-URLENCODED",
]  # fmt: skip
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Body:
    """A request body as sent: its bytes and Content-Type."""

    data: bytes
    content_type: str | None


@st.composite
def encoded(draw: st.DrawFn, pairs: list[tuple[str, str]]) -> Body:
    """`pairs` urlencoded (in some charset) or as multipart, or mangled, or garbage instead."""
    how = draw(st.sampled_from(["urlencoded"] * 5 + ["multipart", "multipart", "mangled", "garbage"]))
    if how == "multipart":
        boundary, data = encode_multipart(MultiDict(pairs), boundary="kabootar-fuzz")
        return Body(data, f"multipart/form-data; boundary={boundary}")
    if how == "garbage":
        return Body(draw(st.one_of(raw_bits, st.binary(max_size=300))), draw(st.sampled_from(CONTENT_TYPES)))
    charset = draw(st.sampled_from(["utf-8"] * 4 + ["latin-1", "utf-16", "cp1256"]))
    data = urllib.parse.urlencode(pairs, encoding=charset, errors="replace").encode("ascii")
    if how == "mangled":
        data = draw(raw_bits) + data + draw(raw_bits)
    return Body(data, FORM)


@st.composite
def sms_fields(draw: st.DrawFn) -> list[tuple[str, str | Fresh]]:
    """Twilio's inbound fields with odd values, media and arbitrary extras.

    Three times in four the MessageSid and From are Twilio's (so the text gets through
    and the workers meet its body); otherwise any field may be missing or odd too.
    """
    typical = draw(st.integers(0, 3)) > 0
    pairs: list[tuple[str, str | Fresh]] = []
    for name, values in [
        (
            draw(st.sampled_from(["MessageSid", "MessageSid", "SmsSid"])),
            fresh_sid if typical else message_sids,
        ),
        ("From", fresh_number if typical else senders),
        ("To", st.one_of(st.just("+15005550006"), odd_text)),
        ("AccountSid", st.one_of(st.just("AC" + "0" * 32), odd_text)),
        ("Body", texts),
        ("NumMedia", numbers),
        ("NumSegments", numbers),
    ]:
        if (typical and name in ("MessageSid", "SmsSid", "From")) or draw(st.integers(0, 9)):
            pairs.append((name, draw(values)))  # each present nine times in ten
    media = st.one_of(st.just("https://api.twilio.com/m/1.jpg"), st.just("javascript:alert(1)"), odd_text)
    pairs += [(f"MediaUrl{n}", draw(media)) for n in range(draw(st.integers(0, 3)))]
    pairs += draw(st.lists(st.tuples(odd_text, odd_text), max_size=3))  # unknown fields, repeats
    return list(draw(st.permutations(pairs)))


def parsed(app: Flask, path: str, body: Body) -> tuple[MultiDict[str, str], str]:
    """The form and full path exactly as the app will see them (empty if it cannot parse the body)."""
    with app.test_request_context(path, method="POST", data=body.data, content_type=body.content_type):
        try:
            form = request.form.copy()
        except HTTPException:
            form = MultiDict()
        return form, request.full_path


def signable(form: MultiDict[str, str]) -> bool:
    """False when werkzeug could not read a multipart field's name (it names the field None)."""
    return all(isinstance(name, str) for name in form)


def twilio_signature(token: str, public_url: str, full_path: str, form: MultiDict[str, str]) -> str:
    """What Twilio sends for this form: every value of every key counts."""
    url = public_url.rstrip("/") + full_path.rstrip("?")
    named = MultiDict([(k, v) for k, v in form.items(multi=True) if isinstance(k, str)])
    return str(RequestValidator(token).compute_signature(url, named))


def send(client: FlaskClient, path: str, body: Body, signature: str | None, **environ: str) -> TestResponse:
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    return client.post(
        path, data=body.data, content_type=body.content_type, headers=headers, environ_overrides=environ
    )


FORGERIES = ["missing", "empty", "garbage", "wrong token", "other url", "other form", "other path"]


def forged(
    kind: str, garbage: str, token: str, public_url: str, full_path: str, form: MultiDict
) -> str | None:
    """A signature that is not Twilio's for this request."""
    if kind == "missing":
        return None
    if kind == "empty":
        return ""
    if kind == "garbage":
        return garbage
    if kind == "wrong token":
        return twilio_signature(token + "x", public_url, full_path, form)
    if kind == "other url":
        return twilio_signature(token, "https://attacker.example", full_path, form)
    if kind == "other path":
        return twilio_signature(token, public_url, full_path.replace("/twilio/", "/twilio/x/"), form)
    tampered = form.copy()
    tampered.add("Injected\x00", "by a forger")
    return twilio_signature(token, public_url, full_path, tampered)


# RQ's liveness keys: a scheduler or worker of another test's processes may still beat or
# take its locks while winding down; they are not data a request could have written.
RQ_LIVENESS = ("rq:scheduler", "rq:worker", "rq:maintenance")


def snapshot(rq_redis: Redis, skip: tuple[str, ...] = ()) -> dict[bytes, bytes | None]:
    """Every key's serialized value (RQ's too), but those starting with `skip` and RQ's liveness keys."""
    skip = (*skip, *RQ_LIVENESS)
    wanted = [k for k in rq_redis.scan_iter(count=1000) if not k.decode().startswith(skip)]
    pipe = rq_redis.pipeline(transaction=False)
    for key in wanted:
        pipe.dump(key)
    return dict(zip(wanted, pipe.execute(), strict=True))


def work_everything(runtime: Runtime) -> list[str]:
    """Run every queue's jobs with a real RQ worker; returns each job failure, retried ones too."""
    failures: list[str] = []

    def record(job: Any, exc_type: type, exc: BaseException, tb: Any) -> bool:
        failures.append(f"{job.func_name}: {exc_type.__name__}: {exc}")
        return True

    rq_redis = Redis.from_url(runtime.config.redis_url or "")
    rq_queues = queues.make(rq_redis)
    worker = BurstWorker([rq_queues[q] for q in queues.ALL], connection=rq_redis, exception_handlers=[record])
    worker.work(burst=True, logging_level="ERROR")
    for name in queues.ALL:
        failures += [
            f"failed job {j} in {name}" for j in FailedJobRegistry(name, connection=rq_redis).get_job_ids()
        ]
    rq_redis.close()
    return failures
