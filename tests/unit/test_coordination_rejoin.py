"""``coordination.ensure_member``: a member dropped from its group joins again.

Found by the Redis stall scenario (tests/faults/test_redis_stall.py): after
the tooz backend stalled past the membership timeout, a peer deleted the
other worker from ``herald.storage`` and tooz never added it back, so that
worker stayed out of every partition ring for good.
"""

from __future__ import annotations

from pathlib import Path

from tooz import coordination as tooz_coordination

from herald.common import coordination

GROUP = "herald.test"


def _coordinator(tmp_path: Path, member: str) -> tooz_coordination.CoordinationDriver:
    coordinator = tooz_coordination.get_coordinator(f"file://{tmp_path}", member.encode())
    coordinator.start()
    return coordinator


def test_a_dropped_member_joins_again_with_its_capabilities(tmp_path: Path) -> None:
    peer, me = _coordinator(tmp_path, "peer"), _coordinator(tmp_path, "me")
    try:
        peer.join_partitioned_group(GROUP.encode())
        me.join_partitioned_group(GROUP.encode())
        assert not coordination.ensure_member(me, GROUP, "me", {"weight": 1})

        me.leave_group(GROUP.encode()).get()  # what a peer's cleanup does to a lapsed member
        assert peer.get_members(GROUP.encode()).get() == {b"peer"}

        assert coordination.ensure_member(me, GROUP, "me", {"weight": 1})
        assert peer.get_members(GROUP.encode()).get() == {b"peer", b"me"}
        assert peer.get_member_capabilities(GROUP.encode(), b"me").get() == {"weight": 1}
        assert not coordination.ensure_member(me, GROUP, "me", {"weight": 1})
    finally:
        peer.stop()
        me.stop()
