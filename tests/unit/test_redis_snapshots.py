"""Unit tests of the bounded snapshot cache that RedisVerificationStore writes against."""

import pytest

from adapters.redis.snapshots import RecentSnapshots, Snapshot


def test_keeps_only_the_most_recently_stored_ids() -> None:
    snapshots = RecentSnapshots(capacity=2)
    snapshots.put("a", Snapshot(b"1", 0))
    snapshots.put("b", Snapshot(b"2", 0))
    snapshots.put("a", Snapshot(b"3", 1))
    snapshots.put("c", Snapshot(None, 0))

    assert len(snapshots) == 2
    assert snapshots.get("b") is None
    assert snapshots.get("a") == Snapshot(b"3", 1)
    assert snapshots.get("c") == Snapshot(None, 0)


def test_rejects_capacity_below_one() -> None:
    with pytest.raises(ValueError, match="use 1 or more"):
        RecentSnapshots(capacity=0)
