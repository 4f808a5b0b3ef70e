"""Every SMS provider by name: its sender, and what its error codes mean to an operator.

The outbox sends through `senders(config)` (one per provider that is on); the console
explains a code with `describe`. Adding a provider is adding its folder and a line in each
table here.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.config import Config
from gateway.providers.android import api as android_api
from gateway.providers.android import vocabulary as android_words
from gateway.providers.records import Sender
from gateway.providers.twilio import api as twilio_api
from gateway.providers.twilio import vocabulary as twilio_words

# The process's sender for each provider (one connection pool each, reused by every job).
SENDERS: dict[str, Callable[[Config], Sender]] = {
    "twilio": twilio_api.sender_for,
    "android": android_api.sender_for,
}
# Whether a provider's API answers a health check now, for those that have one that is free
# (Twilio's would be a billed API call: its health shows in the sends themselves).
PROBES: dict[str, Callable[[Config], bool]] = {
    "android": lambda config: android_api.sender_for(config).probe(),
}
# What each provider's error codes mean, in a few words ("" when unknown). Their codes
# cannot be confused: Twilio's are numbers, the phone's are words.
DESCRIPTIONS: dict[str, Callable[[str], str]] = {
    "twilio": twilio_words.describe,
    "android": android_words.describe,
}
# Whether a provider confirms an opt-out keyword to the texter on its own (Twilio does for
# its standard English ones; a phone confirms nothing).
ANSWERS_STOP_ITSELF: dict[str, Callable[[str], bool]] = {
    "twilio": twilio_words.answers_itself,
}


def sender_for(config: Config, provider: str) -> Sender:
    """The process's sender for `provider`."""
    return SENDERS[provider](config)


def senders(config: Config) -> dict[str, Sender]:
    """A sender for every provider that is on."""
    return {name: sender_for(config, name) for name in config.sms_providers}


def probe(config: Config, provider: str) -> bool | None:
    """Whether the provider's API answers a health check now; None when it has none."""
    check = PROBES.get(provider)
    return check(config) if check else None


def describe(code: str) -> str:
    """What an error code of any provider means, in a few words ("" when unknown)."""
    return next((words for words_of in DESCRIPTIONS.values() if (words := words_of(code))), "")


def answers_stop_itself(provider: str, keyword: str) -> bool:
    """Whether `provider` confirms an opt-out keyword to the texter on its own."""
    answers = ANSWERS_STOP_ITSELF.get(provider)
    return answers is not None and answers(keyword)
