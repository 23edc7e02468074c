"""The controller's half of self-fencing: the lease book.

A renewer thread renews the lease of every host every [ha]
renew_interval (``host.lease_renew``: lease_time, the other hosts as
peers, the host's HA instances) and records, on the controller's
monotonic clock, when each host *acknowledged* a renewal: the agent's
lease began before that moment, so it ends no later than that moment
plus lease_time (agent.controller.self_fence).  A host the store knows
but that does not answer simply keeps its last grant.  The book counts
every host as granted at its own start: a grant a previous controller
made was earlier still.

``verdict(host)`` asks every other host's ``host.peer_view`` and applies
self_fence.self_fence_verdict; recovery evacuates a host without a fence
agent only on "fenced", and only the instances of
``acknowledged_ha(host)``: those the host knew to destroy.

A host with a fence agent gets an empty HA list: the controller never
needs it to fence itself (it powers it off), so a switch outage never
costs its HA guests.

A renewal answered ``fenced`` is a host back from self-fencing: the book
reconciles it (agent.controller.return_host: removes only guests that
provably run elsewhere now; waits while an evacuation from it is in
flight), then clears its fence (``host.lease_clear``), then starts again,
through admission, the HA guests it destroyed that are still its own
(nothing evacuated them).  While a recover_host task of the host is
unfinished it does none of this: that task decides where the guests go.
"""
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from agent.common.errors import Conflict, DroverError, NotFound
from agent.conf import CONF
from agent.controller import ha_policy, return_host, states
from agent.controller.self_fence import UNKNOWN, Verdict, self_fence_verdict

LOG = logging.getLogger(__name__)
RECOVERY_KIND = "recover_host"


class LeaseBook:
    """``call(host, method, timeout=None, **params)``: an agent call
    (HostManager.call); ``submit(operation, uuid)``: admission, for the
    restart of self-fenced HA guests (None: not restarted)."""

    def __init__(self, store, call, *, submit=None, is_ha=ha_policy.is_ha,
                 clock=time.monotonic, workers=8):
        self.store = store
        self.call = call
        self.submit = submit
        self.is_ha = is_ha
        self.clock = clock
        self.workers = workers
        self.started = clock()
        self._granted = {}          # host -> monotonic time of the last ack
        self._replies = {}          # host -> the agent's last reply
        self._missed = set()
        self._inflight = set()
        self._pool = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None

    # -- renewals ---------------------------------------------------------

    def renew_all(self, wait=True):
        """Renew every host's lease, each in a worker of its own: a host
        that does not answer (its call waits for its timeout) delays no
        other; one whose last renewal is still in flight is skipped."""
        hosts = self.store.list_hosts()
        if self.workers <= 1:
            for host in hosts:
                self.renew(host, hosts)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers,
                                            thread_name_prefix="lease")
        futures = []
        for host in hosts:
            with self._lock:
                if host["name"] in self._inflight:
                    continue
                self._inflight.add(host["name"])
            futures.append(self._pool.submit(self._renew_one, host, hosts))
        if wait:
            for future in futures:
                future.result()

    def _renew_one(self, host, hosts):
        try:
            return self.renew(host, hosts)
        finally:
            with self._lock:
                self._inflight.discard(host["name"])

    def ha_instances(self, host):
        if host.get("fence_agent"):
            return []
        return sorted(i["uuid"] for i in
                      self.store.list_instances(host=host["name"])
                      if self.is_ha(self.store, i))

    def renew(self, host, hosts):
        name = host["name"]
        peers = [{"name": h["name"], "address": h["address"]}
                 for h in hosts if h["name"] != name]
        try:
            reply = self.call(name, "host.lease_renew",
                              timeout=CONF.ha.renew_interval,
                              lease_time=CONF.ha.lease_time, peers=peers,
                              ha_instances=self.ha_instances(host))
        except DroverError as err:
            if name not in self._missed:
                LOG.info("host %s: lease not renewed: %s", name, err)
                self._missed.add(name)
            return None
        with self._lock:
            self._granted[name] = self.clock()
            self._replies[name] = reply
        if name in self._missed:
            LOG.info("host %s: lease renewed again", name)
            self._missed.discard(name)
        if reply.get("fenced"):
            self.reconcile(name, reply)
        return reply

    # -- the verdict --------------------------------------------------------

    def last_granted(self, name):
        with self._lock:
            return self._granted.get(name, self.started)

    def verdict(self, name):
        """Has host ``name`` fenced itself?  A Verdict (self_fence)."""
        others = [h["name"] for h in self.store.list_hosts()
                  if h["name"] != name]

        def view(peer):
            try:
                return peer, self.call(peer, "host.peer_view",
                                       timeout=CONF.ha.renew_interval)
            except DroverError:
                return peer, None
        if self.workers <= 1:
            answers = [view(peer) for peer in others]
        elif others:
            with ThreadPoolExecutor(min(self.workers, len(others))) as pool:
                answers = list(pool.map(view, others))
        else:
            answers = []
        views = {peer: v.get(name) for peer, v in answers
                 if isinstance(v, dict)}
        try:
            return self_fence_verdict(
                self.clock(), self.last_granted(name), CONF.ha.lease_time,
                CONF.ha.lease_margin, views, len(others),
                peer_timeout=CONF.ha.peer_timeout,
                probe_interval=CONF.ha.renew_interval)
        except (TypeError, ValueError) as err:   # a malformed view
            return Verdict(UNKNOWN, f"bad peer view: {err}")

    def acknowledged_ha(self, name):
        """The HA instances host ``name`` acknowledged in its last renewal:
        the only ones it destroys when it fences itself.  On "fenced",
        recovery may evacuate these and no others (an HA guest started
        there after that renewal may still run)."""
        with self._lock:
            reply = self._replies.get(name) or {}
        return list(reply.get("ha_instances") or [])

    def status(self, name):
        """The lease fields of ``host show``."""
        with self._lock:
            granted = self._granted.get(name)
            reply = self._replies.get(name) or {}
        now = self.clock()
        return {
            "lease_time": CONF.ha.lease_time,
            "lease_last_renewal_s": None if granted is None
            else round(now - granted, 1),
            "lease_expires_in_s": None if granted is None
            else round(granted + CONF.ha.lease_time - now, 1),
            "self_fenced": bool(reply.get("fenced")),
            "self_fence_reason": reply.get("reason"),
        }

    # -- a self-fenced host returns -------------------------------------------

    def recovery_running(self, name):
        return any(t["kind"] == RECOVERY_KIND
                   and (t.get("params") or {}).get("host") == name
                   for t in self.store.list_tasks(unfinished=True))

    def reconcile(self, name, reply):
        """Reconcile the self-fenced host, clear it, restart its own HA
        guests.  True when done; False: pending (the next renewal tries
        again)."""
        if self.recovery_running(name):
            LOG.info("host %s: self-fenced; reconcile waits for its "
                     "recovery task", name)
            return False
        try:
            domains = [d["uuid"] for d in
                       self.call(name, "host.facts").get("domains", [])]
            pending = return_host.run(self.store, self.call, name, domains)
            if pending:
                LOG.warning("host %s: self-fenced, reconcile pending: %s",
                            name, pending[0])
                return False
            self.call(name, "host.lease_clear")
        except DroverError as err:
            LOG.warning("host %s: reconcile after self-fence: %s", name, err)
            return False
        LOG.warning("host %s: reconciled after it fenced itself (%s); "
                    "fence cleared", name, reply.get("reason"))
        for uuid in reply.get("destroyed") or []:
            self.restart(name, uuid)
        return True

    def restart(self, host, uuid):
        """Start a self-fenced HA guest again on its own host (only if it
        is still that host's: nothing evacuated it)."""
        if self.submit is None:
            return
        try:
            inst = self.store.get_instance(uuid)
            if inst["host"] != host or inst["task_state"] is not None:
                return
            if inst["vm_state"] == states.ACTIVE:
                # Destroyed by the agent, not yet seen by the poller.
                self.store.update_instance(
                    uuid, expected={"task_state": None, "host": host,
                                    "vm_state": states.ACTIVE},
                    vm_state=states.STOPPED, power_state=states.SHUTDOWN)
            self.submit("start", uuid)
            LOG.info("host %s: HA guest %s it destroyed is started again",
                     host, uuid)
        except (Conflict, NotFound) as err:
            LOG.info("host %s: HA guest %s not restarted: %s", host, uuid,
                     err)

    # -- the thread ----------------------------------------------------------

    def start(self):
        """Renew every up host's lease from now on (the controller leads
        now: a host not acknowledged since counts from here)."""
        self.started = self.clock()

        def loop():
            while not self._stop.is_set():
                began = self.clock()
                try:
                    self.renew_all(wait=False)
                except Exception:       # must outlive any one failure
                    LOG.exception("lease renewals failed")
                self._stop.wait(max(0.05, CONF.ha.renew_interval
                                    - (self.clock() - began)))
        self._thread = threading.Thread(target=loop, name="leases",
                                        daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self._pool is not None:
            self._pool.shutdown(wait=False)
