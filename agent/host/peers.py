"""Probing the peer hosts: can this host still reach the others?

Every ``renew_interval`` the agent opens a TCP connection to each peer's
sshd (its address, [ssh] port) and closes it: a connection needs
traffic both ways, so "A reaches B" and "B reaches A" agree, which the
controller's verdict relies on (agent.controller.self_fence).  A peer
that has not answered for ``peer_timeout`` seconds is unreachable.

``view`` is what ``host.peer_view`` returns: {peer: seconds since its
last answer}.  A peer never answered since this agent started probing
it is given the seconds since then once that is peer_timeout or more
(it has been silent at least that long), None before: no opinion yet.
"""
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor


def tcp_probe(address, port, timeout):
    """True if a TCP connection to ``address``:``port`` opens in time."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


class Peers:
    """Last answer of each peer, on a monotonic ``clock``.  ``probe(address)
    -> bool``."""

    def __init__(self, probe, clock=time.monotonic, workers=8):
        self.probe = probe
        self.clock = clock
        self.workers = workers
        self._lock = threading.Lock()
        self._peers = {}            # name -> address
        self._last = {}             # name -> monotonic time of last answer
        self._since = {}            # name -> monotonic time probing began

    def set_peers(self, peers):
        """The peers the controller named in its last renewal."""
        with self._lock:
            new = {p["name"]: p["address"] for p in peers}
            now = self.clock()
            for name in list(self._peers):
                if name not in new:
                    self._last.pop(name, None)
                    self._since.pop(name, None)
            for name in new:
                self._since.setdefault(name, now)
            self._peers = new

    def probe_all(self):
        """Probe every peer once (in parallel); returns {name: answered}."""
        with self._lock:
            peers = dict(self._peers)
        if not peers:
            return {}
        names = sorted(peers)
        if self.workers <= 1 or len(names) == 1:
            answers = [self.probe(peers[n]) for n in names]
        else:
            with ThreadPoolExecutor(min(self.workers, len(names))) as pool:
                answers = list(pool.map(lambda n: self.probe(peers[n]),
                                        names))
        now = self.clock()
        with self._lock:
            for name, ok in zip(names, answers, strict=True):
                if ok and name in self._peers:
                    self._last[name] = now
        return dict(zip(names, answers, strict=True))

    def view(self, peer_timeout):
        now = self.clock()
        with self._lock:
            out = {}
            for name in self._peers:
                if name in self._last:
                    out[name] = now - self._last[name]
                else:
                    silent = now - self._since.get(name, now)
                    out[name] = silent if silent >= peer_timeout else None
            return out

    def reached(self, peer_timeout):
        """Peers that answered within ``peer_timeout`` seconds."""
        return sorted(n for n, s in self.view(peer_timeout).items()
                      if s is not None and s < peer_timeout)

    def count(self):
        with self._lock:
            return len(self._peers)
