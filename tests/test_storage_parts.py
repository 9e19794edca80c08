"""PartUploads: the parts of one streamed upload in flight together, bounded, in order."""
from __future__ import annotations

import threading
import time

import pytest

from dldriver.storage.base import PartUploads


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
