"""The adoption rule of collector/peers.py on its own, with time passed by hand."""

from __future__ import annotations

from collector.peers import PeerTable


def test_offline_peer_is_adopted_after_the_wait_by_the_lowest_online_collector() -> None:
    a, b = PeerTable("c-a", after=60), PeerTable("c-b", after=60)
    for t in (a, b):
        t.seen("c-a", "online", 0)
        t.seen("c-b", "online", 0)
        t.seen("c-z", "offline", 10)
    assert a.orphans(69) == set()  # not gone long enough
    assert a.orphans(70) == {"c-z"}
    assert b.orphans(70) == set()  # c-a is online and lower: only it adopts


def test_a_session_held_by_a_live_collector_is_not_adopted_again() -> None:
    b = PeerTable("c-b", after=5)
    b.seen("c-a", "online", 0)
    b.seen("c-z", "held:c-a", 0)
    b.seen("c-a", "offline", 100)  # c-a is the lowest until it goes
    assert b.orphans(104) == set()
    # The holder died too: after the wait, both sessions are orphans of the survivor.
    assert b.orphans(105) == {"c-a", "c-z"}


def test_a_returning_peer_is_released() -> None:
    a = PeerTable("c-a", after=5)
    a.seen("c-z", "held:c-a", 0)
    assert not a.returned("c-z")
    a.seen("c-z", "online", 50)
    assert a.returned("c-z")
    assert a.orphans(100) == set()
