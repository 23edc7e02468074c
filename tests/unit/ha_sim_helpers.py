"""Automatic recovery on the simulated fleet: EvacLab (the watch of the
two promises at every agent call, a real fence agent script) with the
controller's recovery running as it does in the daemon: polls every
POLL_S simulated seconds, the recovery told of silent hosts and of HA
guests found down.

- ``boot_ha(name, priority=0, **boot)``: an instance with ``--property
  ha=true`` (and ``ha_priority``).
- ``advance(seconds)``: the controller polls for that long (simulated);
  a fence task's ``action=off`` powers the host off as the BMC would
  (at the next agent call or poll, before anything else runs).
- ``leases``: a fake LeaseBook (``set(host, state, reason)``), given to
  the controller as ``services.leases`` (selffence's interface).
- ``later(seconds, fn)``: ``fn()`` at that simulated time from now (runs
  even inside a task's wait, as the fence retries sleep).
- The controller of a new lab has run for longer than [ha]
  startup_grace; ``restart_controller`` starts a new one (grace again).
"""
import dataclasses
import os

from agent.conf import CONF
from agent.controller import ha_policy
from agent.controller.ops.recover_host import KIND as RECOVER_KIND
from evac_sim_helpers import EvacLab
from sim_helpers import POLL_S


LONGEST_S = 3600.0      # a scenario that runs longer is stuck (fails)


class SimTimeout(BaseException):
    """A scenario ran for more simulated time than LONGEST_S: a wait that
    never ends (the engine does not catch it: the test fails)."""


@dataclasses.dataclass(frozen=True)
class Verdict:
    state: str
    reason: str


class FakeLeases:
    """services.leases as the LeaseBook offers it: ``verdict`` and
    ``acknowledged_ha`` (by default every HA instance the store has on the
    host, as if its last renewal had carried them all; ``acked[host]``
    says otherwise)."""

    def __init__(self, store):
        self.store = store
        self.verdicts = {}
        self.asked = []
        self.acked = {}

    def status(self, host):
        state = self.verdicts.get(host, Verdict("wait", "")).state
        return {"self_fenced": state == "fenced"}

    def acknowledged_ha(self, host):
        if host in self.acked:
            return list(self.acked[host])
        return [i["uuid"] for i in self.store.list_instances(host=host)
                if ha_policy.is_ha(self.store, i)]

    def set(self, host, state, reason=""):
        self.verdicts[host] = Verdict(state, reason or f"simulated {state}")

    def verdict(self, host):
        self.asked.append(host)
        return self.verdicts.get(host, Verdict("wait", "lease not over"))


class HALab(EvacLab):
    def __init__(self, tmp_path, leases=True, **kwargs):
        super().__init__(tmp_path, **kwargs)
        self.leases = FakeLeases(self.store) if leases else None
        self._attach()
        self.recovery.started = self.fleet.clock.now - \
            CONF.ha.startup_grace - 1
        self.later(LONGEST_S, self._stuck)

    @staticmethod
    def _stuck():
        raise SimTimeout(f"still running after {LONGEST_S:g} simulated s")

    def _attach(self):
        self.svc.leases = self.leases

    @property
    def recovery(self):
        return self.svc.hosts.recovery

    # -- the world --------------------------------------------------------

    def _watch(self, fleet, host, method):
        self.bmc()
        return super()._watch(fleet, host, method)

    def bmc(self):
        """A fence agent's action=off powers its host off."""
        for name in list(self.fleet.world.hosts):
            mark = self.fence_dir / f"{name}.off"
            if mark.exists():
                os.unlink(mark)
                self.fleet.power_off(name)

    def later(self, seconds, fn):
        self.fleet.clock.at(seconds, fn)

    def crash_guest(self, name, state="crashed"):
        """QEMU of ``name`` died (or the guest powered itself off:
        state="shutoff") where it runs."""
        uuid = self.uuid(name)
        for host in self.fleet.world.hosts.values():
            dom = host.domains.get(uuid)
            if dom is not None and dom.running:
                dom.state = state

    def no_fence_agent(self, host):
        self.store.set_fence_method(host, None)

    # -- the controller ----------------------------------------------------

    def boot_ha(self, name, priority=None, ha="true", host="h1",
                storage="shared", flavor="small"):
        meta = {"ha": ha}
        if priority is not None:
            meta["ha_priority"] = str(priority)
        return self._run(lambda: self.svc.admission.create(
            name, flavor, "img", host=host, storage=storage, metadata=meta))

    def poll(self):
        self.bmc()
        super().poll()
        self.bmc()

    def advance(self, seconds):
        for _ in range(int(round(seconds / POLL_S))):
            self.poll()
            self.check(f"at t={self.fleet.clock.now:.0f}")

    def restart_controller(self):
        super().restart_controller()
        self._attach()

    # -- what tests read ---------------------------------------------------

    def where(self, name):
        inst = self.store.get_instance(name)
        return inst["host"], inst["status"]

    def running_on(self, name):
        return self.fleet.world.where_running(self.uuid(name))

    def host_events(self, host):
        return [(e["event"], e["result"]) for e in
                self.store.list_host_events(host)]

    def host_event_text(self, host):
        return " | ".join(f"{e['event']}: {e['details']}" for e in
                          self.store.list_host_events(host))

    def actions(self, name):
        return [a["action"] for a in self.store.list_actions(self.uuid(name))]

    def events(self, name, action):
        return [(e["event"], e["result"])
                for a in self.store.list_actions(self.uuid(name))
                if a["action"] == action for e in a["events"]]

    def recoveries(self, host=None):
        return [t for t in self.store.list_tasks() if t["kind"] ==
                RECOVER_KIND and host in (None, t["params"]["host"])]

    def problems(self):
        """The watch's violations and the judge's findings (database
        against fleet, DATA LOST), all in one list: [] when consistent.
        The power state of a guest left on a host that is not up is what
        it was last seen, and the audit cannot reach that host: neither is
        counted."""
        off = {h["name"] for h in self.store.list_hosts()
               if h["state"] != "up"}
        down = {i["name"] for i in self.store.list_instances()
                if i["host"] in off}
        return self.violations + [
            p for p in self.judge(self.had_data)
            if not (p.split(":")[0] in down and "power_state" in p)
            and not any(p.startswith(f"audit: unreachable {h} ")
                        for h in off)]
