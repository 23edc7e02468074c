"""Peer probes: last answers on a monotonic clock, and a real TCP probe."""
import socket

from agent.host.peers import Peers, tcp_probe

PEERS = [{"name": "h2", "address": "a2"}, {"name": "h3", "address": "a3"}]


class Clock:
    now = 100.0

    def __call__(self):
        return self.now


def test_view_is_seconds_since_the_last_answer():
    clock, up = Clock(), {"a2": True, "a3": True}
    peers = Peers(lambda a: up[a], clock=clock, workers=1)
    peers.set_peers(PEERS)
    peers.probe_all()
    up["a3"] = False
    clock.now += 5
    peers.probe_all()
    clock.now += 1
    assert peers.view(4.0) == {"h2": 1.0, "h3": 6.0}
    assert peers.reached(4.0) == ["h2"]


def test_never_answered_is_no_opinion_until_peer_timeout():
    clock = Clock()
    peers = Peers(lambda a: False, clock=clock, workers=1)
    peers.set_peers(PEERS)
    peers.probe_all()
    assert peers.view(4.0) == {"h2": None, "h3": None}
    clock.now += 4.5
    assert peers.view(4.0) == {"h2": 4.5, "h3": 4.5}


def test_a_peer_dropped_from_the_renewal_is_forgotten():
    clock = Clock()
    peers = Peers(lambda a: True, clock=clock, workers=1)
    peers.set_peers(PEERS)
    peers.probe_all()
    peers.set_peers(PEERS[:1])
    assert list(peers.view(4.0)) == ["h2"] and peers.count() == 1


def test_parallel_probes_record_every_peer():
    peers = Peers(lambda a: a == "a2", clock=Clock(), workers=8)
    peers.set_peers(PEERS)
    assert peers.probe_all() == {"h2": True, "h3": False}


def test_tcp_probe_against_a_listening_and_a_closed_port():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert tcp_probe("127.0.0.1", port, 1.0)
    assert not tcp_probe("127.0.0.1", port, 1.0)
