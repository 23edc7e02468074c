"""The agent's self-fence guard: every ``renew_interval`` it probes the
peers and applies agent.host.lease.should_fence.  When the rule says
fence, it first refuses every guest start (``check_start``: instance
start, an incoming live migration), then destroys this host's HA guests
(the list of the last renewal; with none there is nothing to fence and
nothing is refused), and keeps destroying any of them found
running on every tick until the controller clears it (``host.lease_clear``,
after it has reconciled the host).  Non-HA guests are left running.

Every decision is a log line and a ``host.self_fence`` event to
subscribers: lease lapsed (and why it does not fence), fenced (why),
each guest destroyed, a start refused, cleared.
"""
import logging
import threading
import time

from agent.common.errors import Conflict, DroverError
from agent.host.lease import should_fence

LOG = logging.getLogger(__name__)


class SelfFence:
    """``destroy(uuid) -> bool`` destroys a running guest (False: it was
    not running); ``publish(event, data)`` tells subscribers."""

    def __init__(self, lease, peers, destroy, *, peer_timeout, interval,
                 publish=None, clock=time.monotonic):
        self.lease = lease
        self.peers = peers
        self.destroy = destroy
        self.peer_timeout = peer_timeout
        self.interval = interval
        self.publish = publish or (lambda event, data: None)
        self.clock = clock
        self.last_tick = None
        self._lapsed_said = False
        self.peers.set_peers(lease.peers)

    # -- RPC: host.lease_renew, host.peer_view, host.lease_clear ----------

    def lease_renew(self, lease_time, peers, ha_instances):
        was_lapsed = self.lease.lapsed_for() is not None
        self.peers.set_peers(peers)
        status = self.lease.renew(lease_time, peers, ha_instances)
        if was_lapsed:
            self._say("lease renewed after it had lapsed"
                      + (" (still fenced until reconciled)"
                         if status["fenced"] else ""))
        self._lapsed_said = False
        return status

    def peer_view(self):
        return self.peers.view(self.peer_timeout)

    def lease_clear(self):
        if self.lease.clear():
            self._say("cleared by the controller after its reconcile: "
                      "guests may start again")
        return {"fenced": False}

    # -- the guard ------------------------------------------------------------

    def check_start(self, uuid):
        """Conflict while this host is fenced."""
        status = self.lease.status()
        if status["fenced"]:
            self._say(f"start of {uuid} refused: fenced", uuid=uuid)
            raise Conflict(f"this host fenced itself ({status['reason']}); "
                           "it starts no guest until the controller has "
                           "reconciled it")

    def tick(self):
        """One round: probe the peers, decide, act."""
        self.peers.probe_all()
        self.last_tick = self.clock()
        if self.lease.status()["fenced"]:
            self._destroy_ha()
            return
        lapsed = self.lease.lapsed_for()
        reached = self.peers.reached(self.peer_timeout)
        decision = should_fence(lapsed, reached, self.peers.count())
        if not decision.fence:
            if lapsed is not None and not self._lapsed_said:
                self._say(f"not fencing: {decision.reason}")
                self._lapsed_said = True
            return
        if not self.lease.status()["ha_instances"]:
            # Nothing the controller could start elsewhere on its own (a
            # host with a fence agent gets an empty list): nothing to
            # fence, and starts are not refused.
            if not self._lapsed_said:
                self._say(f"not fencing: no HA guests here; "
                          f"{decision.reason}")
                self._lapsed_said = True
            return
        self.lease.mark_fenced(decision.reason, [])
        self._say(f"fencing this host: {decision.reason}", level="warning")
        self._destroy_ha()

    def _destroy_ha(self):
        destroyed = []
        for uuid in self.lease.status()["ha_instances"]:
            self.last_tick = self.clock()   # progress, for the watchdog
            try:
                if self.destroy(uuid):
                    destroyed.append(uuid)
                    self._say(f"HA guest {uuid} destroyed", uuid=uuid,
                              level="warning")
            except DroverError as err:
                LOG.error("self-fence: destroying %s failed (retried next "
                          "round): %s", uuid, err)
        if destroyed:
            self.lease.mark_fenced(self.lease.status()["reason"], destroyed)

    def healthy(self):
        """The guard ran (or made progress) within two rounds and a
        second (the watchdog's health check): a round probes for at most
        a second and each guest destroy counts as progress."""
        return self.last_tick is not None and \
            self.clock() - self.last_tick < 2 * self.interval + 1

    def run(self, stop):
        """Tick every ``interval`` until ``stop`` (an Event) is set."""
        while not stop.is_set():
            try:
                self.tick()
            except Exception:       # the guard must outlive any one fault
                LOG.exception("self-fence round failed")
            stop.wait(self.interval)

    def start(self, stop):
        thread = threading.Thread(target=self.run, args=(stop,),
                                  name="self-fence", daemon=True)
        thread.start()
        return thread

    def _say(self, message, uuid=None, level="info"):
        getattr(LOG, level)("self-fence: %s", message)
        self.publish("host.self_fence", {"message": message, "uuid": uuid,
                                         **self.lease.status()})
