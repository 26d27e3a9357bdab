"""OffsetTracker: commits never skip a message that is still running."""

import random

import pytest

from adapters.kafka.offsets import OffsetTracker


def test_nothing_committable_before_any_finish() -> None:
    tracker = OffsetTracker()
    tracker.dispatched(5)

    assert tracker.committable() is None


def test_slow_message_holds_back_later_commits() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 12):
        tracker.dispatched(offset)

    tracker.finished(11)
    tracker.finished(12)

    assert tracker.committable() is None
    tracker.finished(10)
    assert tracker.committable() == 13


def test_commit_moves_to_first_unfinished() -> None:
    tracker = OffsetTracker()
    for offset in (0, 1, 2, 3):
        tracker.dispatched(offset)

    tracker.finished(0)
    tracker.finished(1)
    tracker.finished(3)

    assert tracker.committable() == 2
    assert tracker.in_flight == 2


def test_committed_offset_is_not_offered_again() -> None:
    tracker = OffsetTracker()
    tracker.dispatched(0)
    tracker.finished(0)

    tracker.committed = tracker.committable()

    assert tracker.committable() is None


def test_out_of_order_dispatch_is_rejected() -> None:
    tracker = OffsetTracker()
    tracker.dispatched(3)

    with pytest.raises(ValueError, match="increasing order"):
        tracker.dispatched(2)


def test_random_finish_order_never_skips() -> None:
    generator = random.Random(7)
    for _ in range(200):
        tracker = OffsetTracker()
        offsets = list(range(generator.randint(1, 30)))
        for offset in offsets:
            tracker.dispatched(offset)
        finished: set[int] = set()
        for offset in generator.sample(offsets, len(offsets)):
            tracker.finished(offset)
            finished.add(offset)
            committable = tracker.committable()
            if committable is not None:
                assert set(range(committable)) <= finished
                assert committable not in finished
                tracker.committed = committable
        assert tracker.committed == len(offsets)
