"""Waiting on conditions, never on durations.

A test that sleeps a fixed time and then asserts races the machine it runs on: on a loaded CI
host the thing it waits for has not happened yet, on a fast one the sleep is wasted. Every wait
in the suite names the condition it waits for and fails with a message saying which one never held.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL_S = 0.01


def wait_until(predicate: Callable[[], T | None], timeout: float = 15.0, message: str = "the condition") -> T:
    """Call ``predicate`` until it returns something truthy and return that; fail after ``timeout``
    seconds with ``message`` (what never held). The predicate is called once more at the deadline,
    so a slow poll never fails a condition that holds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{message}: not within {timeout} s")
        time.sleep(POLL_S)


async def wait_until_async(
    predicate: Callable[[], T | None], timeout: float = 15.0, message: str = "the condition"
) -> T:
    """:func:`wait_until` for code on an event loop: the loop keeps running between polls."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{message}: not within {timeout} s")
        await asyncio.sleep(POLL_S)
