"""Twilio's own answers to the keywords it reserves (its default opt-out handling, which
Advanced Opt-Out would let an account change): a phone that texts STOP, or another English
opt-out word, gets Twilio's confirmation, and Twilio sends it nothing more (error 21610)
until it texts START; HELP is answered too, but not to a phone that opted out. Twilio
still passes every such text on to the webhook. Only a text that is the keyword alone
counts: "STOP please" is an ordinary text."""

from __future__ import annotations

import secrets
import time

from redis import Redis

from gateway import segments
from gateway.providers.simulated import handsets
from gateway.providers.twilio import vocabulary
from gateway.providers.twilio.simulator import store

OPT_IN = frozenset({"START", "YES", "UNSTOP"})
HELP = frozenset({"HELP", "INFO"})
# Twilio's default replies, word for word.
OPTED_OUT = (
    "You have successfully been unsubscribed. You will not receive any more messages from this number."
    " Reply START to resubscribe."
)
OPTED_IN = (
    "You have successfully been re-subscribed to messages from this number. Reply HELP for help."
    " Reply STOP to unsubscribe. Msg&Data Rates May Apply."
)
HELPED = "Reply STOP to unsubscribe. Msg&Data Rates May Apply."


def answer(redis: Redis, number: str, body: str) -> None:
    """Do what Twilio does itself when `number` texts `body`: opt it out or in, and answer."""
    word = body.strip().upper()
    if word in vocabulary.OPT_OUT_KEYWORDS:
        store.set_opted_out(redis, number, True)
        _reply(redis, number, OPTED_OUT)
    elif word in OPT_IN:
        store.set_opted_out(redis, number, False)
        _reply(redis, number, OPTED_IN)
    elif word in HELP and not store.is_opted_out(redis, number):
        _reply(redis, number, HELPED)


def _reply(redis: Redis, number: str, text: str) -> None:
    """Twilio's SMS to the phone: in its inbox, delivered."""
    sid = "SM" + secrets.token_hex(16)
    pipe = redis.pipeline(transaction=True)
    handsets.deliver(pipe, "twilio", sid, number, text, segments.segments(text), time.time())
    pipe.execute()
    handsets.set_status(redis, sid, "delivered")
