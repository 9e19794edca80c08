"""PartUploads: the parts of one streamed upload in flight together, bounded, in order; PendingBytes:
what a writer holds until it sends it."""
from __future__ import annotations

import os
import threading
import time

import pytest

from dldriver.storage.base import PartUploads, PendingBytes


def test_parts_go_out_together_up_to_the_bound_and_come_back_in_order():
    lock = threading.Lock()
    state = {"now": 0, "most": 0}
    meet = threading.Barrier(3, timeout=10)  # the first three parts return only once all three are out

    def send(number):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        if number <= 3:
            meet.wait()
        time.sleep(0.002 * (number % 3))  # finish out of order
        with lock:
            state["now"] -= 1
        return f"etag{number}"

    parts = PartUploads(3)
    for number in range(1, 11):
        parts.submit(send, number)
    assert parts.results() == [f"etag{n}" for n in range(1, 11)]
    assert state["most"] == 3


def test_a_failed_part_is_raised():
    def send(number):
        if number == 2:
            raise OSError("part 2 refused")
        return number

    parts = PartUploads(2)
    with pytest.raises(OSError, match="part 2 refused"):
        for number in range(1, 6):
            parts.submit(send, number)
        parts.results()
    parts.close()


def test_pending_bytes_hands_out_what_it_was_given_in_order_in_any_cuts():
    pending = PendingBytes()
    given = bytearray(os.urandom(1000))
    for start in range(0, 1000, 300):  # pieces of 300, the last of 100
        pending.add(given[start:start + 300])
    original = bytes(given)
    given[:] = bytes(1000)  # the writer's caller may reuse its buffer once write() returns
    cuts = [pending.take(n) for n in (0, 120, 300, 7, 1000)]
    assert [len(c) for c in cuts] == [0, 120, 300, 7, 573] and pending.nbytes == 0
    assert all(isinstance(c, bytes) for c in cuts) and b"".join(cuts) == original
    pending.add(original)  # immutable: kept as it is, and handed back whole without a copy
    assert pending.take(1000) is original
