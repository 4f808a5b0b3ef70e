"""Every SMS provider by name: its sender, and what its error codes mean to an operator.

The outbox sends through `senders(config)` (one per provider that is on); the console
explains a code with `describe`. Adding a provider is adding its folder and a line in each
table here.
"""

from __future__ import annotations

from gateway.config import Config
from gateway.providers.android import api as android_api
from gateway.providers.android import vocabulary as android_words
from gateway.providers.records import Sender
from gateway.providers.twilio import api as twilio_api
from gateway.providers.twilio import vocabulary as twilio_words


def sender_for(config: Config, provider: str) -> Sender:
    """The process's sender for `provider` (one connection pool each, reused by every job)."""
    if provider == "android":
        return android_api.sender_for(config)
    return twilio_api.sender_for(config)


def senders(config: Config) -> dict[str, Sender]:
    """A sender for every provider that is on."""
    return {name: sender_for(config, name) for name in config.sms_providers}


def probe(config: Config, provider: str) -> bool | None:
    """Whether the provider's API answers a health check now; None when it has none that is
    free (Twilio's would be a billed API call: its health shows in the sends themselves)."""
    if provider == "android":
        return android_api.sender_for(config).probe()
    return None


def describe(code: str) -> str:
    """What an error code of any provider means, in a few words ("" when unknown). Their
    codes cannot be confused: Twilio's are numbers, the phone's are words."""
    return twilio_words.describe(code) or android_words.describe(code)


def answers_stop_itself(provider: str, keyword: str) -> bool:
    """Whether `provider` confirms an opt-out keyword to the texter on its own (Twilio does
    for its standard English ones; a phone confirms nothing)."""
    return provider == "twilio" and twilio_words.answers_itself(keyword)
