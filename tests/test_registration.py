"""First-time texters get random handles: free nine times in ten however many registered,
and never a taken one when every candidate offered turns out to be taken."""

from __future__ import annotations

import itertools

import pytest
from redis import Redis

from gateway.microblog import handles, subscribers


@pytest.mark.parametrize("population", [0, 1, 27_140, 27_141, 300_000, 5_000_000])
def test_new_handles_have_enough_digits_for_ten_per_texter(population: int):
    digits = handles.digits_for(population)
    assert handles.PAIRS * 10**digits >= 10 * population
    assert digits == 2 or handles.PAIRS * 10 ** (digits - 1) < 10 * population  # no more than that
    assert all(h.rsplit("-", 1)[1].isdigit() for h in handles.candidates(4, population))
    assert len(handles.candidates(4, population)[0].rsplit("-", 1)[1]) == digits


def test_a_batch_whose_candidates_are_all_taken_still_registers_everyone_apart(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
):
    taken = subscribers.register(redis, "someone", "ciphertext").handle
    fresh = (f"calm-crow-{n:02d}" for n in itertools.count(10))
    offered = itertools.chain([taken] * (3 * subscribers.CANDIDATES), fresh)
    monkeypatch.setattr(handles, "random_handle", lambda digits=2: next(offered))

    found = subscribers.register_many(redis, [(f"new-{n}", "ciphertext") for n in range(3)])

    assert [s.is_new for s in found] == [True, True, True]
    assert len({s.handle for s in found} | {taken}) == 4
    assert [subscribers.handle_of(redis, s.id) for s in found] == [s.handle for s in found]
