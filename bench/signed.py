"""Pre-signed Twilio SMS webhooks for wrk, in the baseline's file format.

One request per line: the X-Twilio-Signature, a TAB, the form-encoded body. Every line
has a fresh MessageSid; line i comes from the number +98912 followed by `first_sender + i`
in seven digits, so each text of a run has its own sender (and a sender can be
registered beforehand, see `senders`). The signature covers the URL Twilio would call,
so one file serves every app told that URL (Kabootar's PUBLIC_URL + /twilio/sms).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.parse
import uuid
from pathlib import Path

from twilio.request_validator import RequestValidator

TO = "+15005550006"
# Ordinary posts in English and Persian, some tagged; none has the shape of a command.
BODIES = (
    "#Iranelection crowds at Azadi square now",
    "سلام، خیابان آزادی شلوغ است #Iranelection",
    "Phones still work in Tehran, internet is down since noon",
    "پلیس در میدان انقلاب است، مراقب باشید",
)


def sender(i: int) -> str:
    """The phone number of sender number `i`."""
    return f"+98912{i % 10_000_000:07d}"


def form(i: int, sid: str | None = None, body: str | None = None) -> dict[str, str]:
    """Twilio's inbound SMS fields for text number `i`."""
    return {
        "MessageSid": sid or "SM" + uuid.uuid4().hex,
        "AccountSid": "AC" + "0" * 32,
        "From": sender(i),
        "To": TO,
        "Body": body if body is not None else f"{BODIES[i % len(BODIES)]} {i}",
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }


def write(path: Path, url: str, token: str, count: int, first_sender: int = 0) -> list[str]:
    """Write `count` signed requests for `url`; returns their MessageSids in file order."""
    validator = RequestValidator(token)
    sids = []
    with open(path, "w") as out:
        for i in range(first_sender, first_sender + count):
            params = form(i)
            sids.append(params["MessageSid"])
            out.write(validator.compute_signature(url, params) + "\t" + urllib.parse.urlencode(params) + "\n")
    return sids


def write_android(path: Path, signing_key: str, count: int, first_sender: int = 0) -> None:
    """Write `count` signed `sms:received` webhooks of the Android app, one a line: the
    X-Timestamp, a TAB, the X-Signature, a TAB, the JSON body. Signed now: the gateway takes
    them for five minutes (a bench scenario lasts seconds)."""
    timestamp = str(int(time.time()))
    with open(path, "w") as out:
        for i in range(first_sender, first_sender + count):
            payload = {
                "messageId": uuid.uuid4().hex[:16],
                "message": f"{BODIES[i % len(BODIES)]} {i}",
                "sender": sender(i),
                "recipient": TO,
                "simNumber": 1,
                "receivedAt": "2026-12-04T12:00:00.000+03:30",
            }
            doc = {
                "deviceId": "bench",
                "event": "sms:received",
                "id": uuid.uuid4().hex[:21],
                "payload": payload,
                "webhookId": "bench",
            }
            body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
            signature = hmac.new(signing_key.encode(), body + timestamp.encode(), hashlib.sha256).hexdigest()
            out.write(f"{timestamp}\t{signature}\t{body.decode()}\n")


def read(path: Path) -> list[tuple[str, str, str]]:
    """The (signature, body, MessageSid) of each line of a file `write` made."""
    rows = []
    for line in path.read_text().splitlines():
        signature, body = line.split("\t", 1)
        sid = urllib.parse.parse_qs(body)["MessageSid"][0]
        rows.append((signature, body, sid))
    return rows


def senders(first_sender: int, count: int) -> list[str]:
    """The numbers `write(…, count, first_sender)` sends from."""
    return [sender(i) for i in range(first_sender, first_sender + count)]
