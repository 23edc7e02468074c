"""The lease an agent holds from the controller, and the self-fence rule.

Each renewal (``host.lease_renew``) grants the lease for ``lease_time``
seconds from the moment the agent receives it, measured on the agent's
monotonic clock: a wall-clock jump (NTP, an operator's ``date``) neither
shortens nor lengthens it.  With the renewal come the peers to probe and
the HA instances of this host, the ones self-fencing destroys.

``should_fence`` (pure) is the agent's half of the rule whose reasoning
is agent.controller.self_fence's docstring: fence only when the lease has
lapsed AND the host cannot reach a majority of its peers.  A host that
has never been granted a lease never fences (HA is off, or no controller
ever armed it); a host without peers never fences (its lapsed lease
says only that the controller is away).

Once fenced the lease stays fenced, renewals or not, until the
controller has reconciled the host and calls ``host.lease_clear``; a
renewal's reply says ``fenced`` so that the controller knows.  The state
is kept in a small file (``state_path``) so that an agent restarted (by
the systemd watchdog, say) still knows its HA guests, its lease and
whether it is fenced: monotonic time survives a restart of the process,
and a different boot id says the host rebooted (its guests are off).
"""
import dataclasses
import json
import logging
import os
import threading
import time

LOG = logging.getLogger(__name__)
BOOT_ID = "/proc/sys/kernel/random/boot_id"


def majority(count):
    return count // 2 + 1


@dataclasses.dataclass(frozen=True)
class Decision:
    fence: bool
    reason: str


def should_fence(lapsed_for, reached, peer_count):
    """Whether to fence now.  ``lapsed_for``: seconds since the lease
    lapsed (None: it holds, or was never granted); ``reached``: peers
    that answered within peer_timeout; ``peer_count``: peers known."""
    if lapsed_for is None:
        return Decision(False, "lease holds")
    if peer_count == 0:
        return Decision(False, f"lease lapsed {lapsed_for:.1f} s ago; no "
                               "peers to ask: the controller is away, not "
                               "this host")
    need = majority(peer_count)
    if len(reached) >= need:
        return Decision(False, f"lease lapsed {lapsed_for:.1f} s ago but "
                               f"{len(reached)} of {peer_count} peers answer: "
                               "the controller is away, not this host")
    return Decision(True, f"lease lapsed {lapsed_for:.1f} s ago and only "
                          f"{len(reached)} of {peer_count} peers answer "
                          f"({need} needed): this host is the isolated one")


def _boot_id():
    try:
        with open(BOOT_ID) as f:
            return f.read().strip()
    except OSError:
        return None


class Lease:
    """The lease of this host (thread-safe).  ``clock``: monotonic."""

    def __init__(self, clock=time.monotonic, state_path=None, boot_id=None):
        self.clock = clock
        self.state_path = state_path
        self.boot_id = boot_id if boot_id is not None else _boot_id()
        self._lock = threading.Lock()
        self.expires = None         # monotonic; None: never granted
        self.lease_time = None
        self.peers = []             # [{"name", "address"}]
        self.ha_instances = []
        self.fenced = False
        self.fence_reason = None
        self.destroyed = []         # HA guests the self-fence destroyed
        self._load()

    # -- what the controller calls -----------------------------------------

    def renew(self, lease_time, peers, ha_instances):
        with self._lock:
            self.lease_time = float(lease_time)
            self.expires = self.clock() + self.lease_time
            self.peers = [{"name": p["name"], "address": p["address"]}
                          for p in peers]
            self.ha_instances = list(ha_instances)
            self._save()
            return self.status_locked()

    def clear(self):
        """The controller has reconciled this host: it may start guests
        again (the lease itself is the next renewal's business)."""
        with self._lock:
            was = self.fenced
            self.fenced, self.fence_reason, self.destroyed = False, None, []
            self._save()
        return was

    # -- what the agent's guard uses ----------------------------------------

    def lapsed_for(self):
        """Seconds since the lease lapsed; None while it holds or if it
        was never granted."""
        with self._lock:
            if self.expires is None:
                return None
            over = self.clock() - self.expires
            return over if over >= 0 else None

    def mark_fenced(self, reason, destroyed):
        with self._lock:
            self.fenced, self.fence_reason = True, reason
            self.destroyed = sorted(set(self.destroyed) | set(destroyed))
            self._save()

    def status(self):
        with self._lock:
            return self.status_locked()

    def status_locked(self):
        left = None if self.expires is None else self.expires - self.clock()
        return {"fenced": self.fenced, "reason": self.fence_reason,
                "expires_in": left, "destroyed": list(self.destroyed),
                "ha_instances": list(self.ha_instances)}

    # -- kept across agent restarts ----------------------------------------

    def _save(self):
        if not self.state_path:
            return
        data = {"boot_id": self.boot_id, "expires": self.expires,
                "lease_time": self.lease_time, "peers": self.peers,
                "ha_instances": self.ha_instances, "fenced": self.fenced,
                "reason": self.fence_reason, "destroyed": self.destroyed}
        tmp = f"{self.state_path}.tmp"
        try:
            os.makedirs(os.path.dirname(self.state_path) or ".",
                        exist_ok=True)
            with open(tmp, "w") as f:
                json.dump(data, f)
            os.replace(tmp, self.state_path)
        except OSError as err:
            LOG.warning("cannot write the lease state %s: %s",
                        self.state_path, err)

    def _load(self):
        if not self.state_path:
            return
        try:
            with open(self.state_path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            return
        self.peers = data.get("peers") or []
        self.ha_instances = data.get("ha_instances") or []
        self.lease_time = data.get("lease_time")
        self.fenced = bool(data.get("fenced"))
        self.fence_reason = data.get("reason")
        self.destroyed = data.get("destroyed") or []
        if data.get("boot_id") == self.boot_id:
            self.expires = data.get("expires")
        elif data.get("expires") is not None:
            # Rebooted: its guests are off; the lease is over for sure.
            self.expires = self.clock() - (self.lease_time or 0)
        LOG.info("lease state restored: fenced=%s, expires in %s s",
                 self.fenced, None if self.expires is None
                 else round(self.expires - self.clock(), 1))
