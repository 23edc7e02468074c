"""Automatic recovery: what the controller does when the host poller
(agent.controller.hosts) finds a host silent, or an HA guest down.

- **A host silent for [ha] lease_time** gets a recovery task
  (agent.controller.ops.recover_host: fence, then evacuate its HA
  instances), one at a time per host.  A host with no HA instance gets a
  host event saying so, and nothing else (the operator evacuates).
- **Nothing automatic during [ha] startup_grace** after the controller
  starts: a controller that has just started has not heard from hosts
  that are only slow, and its silence clock for every host starts at
  its own start.  So a controller outage alone never fences or moves
  anything: after it, every host that answers within the grace is fine.
- **An HA guest found off or crashed** (ACTIVE, no task, libvirt says
  shutdown or crashed: it was not stopped through drover, whose stop
  makes it SHUTOFF in the same task) is restarted on its host up to
  [ha] max_restart times, then relocated by a cold migration up to
  max_relocate times, then left in ERROR with the reason.  Attempts are
  counted within restart_window, since the operator last started,
  rebooted or created it.  A guest stopped through drover stays stopped:
  its vm_state is SHUTOFF and it is not looked at.

The decisions are the pure functions below; the rest is bookkeeping.
"""
import datetime
import logging
import time

from agent.common.errors import Conflict, DroverError, NotFound
from agent.conf import CONF
from agent.controller import ha_policy, states
from agent.controller.db.models import utcnow
from agent.controller.ops import recover_host

LOG = logging.getLogger(__name__)

RECOVER_OPERATION = "recover-host"
RESTART, RELOCATE, GIVE_UP = "ha-restart", "ha-relocate", "ha-give-up"
# Operator actions after which earlier automatic attempts no longer count.
FRESH_START = frozenset({"create", "start", "reboot"})
DOWN_POWER = frozenset({states.SHUTDOWN, states.CRASHED})
RETRY_MAX_S = 600.0


# -- decisions (pure) ---------------------------------------------------------

def host_verdict(host, silent_s, lease_time, has_ha, recovering,
                 grace_left):
    """What to do about ``host`` (a record) not heard from for
    ``silent_s`` seconds: "recover", or None, and why (for the log)."""
    if silent_s < lease_time:
        return None, f"silent {silent_s:.0f} s < lease_time {lease_time:g} s"
    if grace_left > 0:
        return None, (f"controller startup grace: {grace_left:.0f} s left "
                      "([ha] startup_grace)")
    if recovering:
        return None, "its recovery is running"
    if not has_ha and host["state"] == "fenced":
        return None, "fenced, no HA instance left on it"
    if not has_ha:
        return None, "no HA instance on it: nothing is recovered " \
                     "automatically"
    if host["state"] == "fenced" or host.get("forced_down"):
        # Fenced before (a recovery, or the operator): its HA instances
        # still there failed to evacuate; the recovery runs again.
        return "recover", "fenced, HA instances still on it"
    return "recover", f"not heard from for {silent_s:.0f} s"


def guest_action(restarts, relocations, max_restart, max_relocate):
    """The next step for an HA guest found down after ``restarts``
    restarts and ``relocations`` relocations in the window."""
    if restarts < max_restart:
        return RESTART
    if relocations < max_relocate:
        return RELOCATE
    return GIVE_UP


def attempts(actions, since):
    """(restarts, relocations) among ``actions`` (a list of instance
    actions, oldest first) started at or after ``since`` (ISO time) and
    after the operator last started, rebooted or created the guest."""
    counted = {RESTART: 0, RELOCATE: 0}
    for act in actions:
        if act["action"] in FRESH_START:
            counted = {RESTART: 0, RELOCATE: 0}
        elif act["action"] in counted and act["start_time"] >= since:
            counted[act["action"]] += 1
    return counted[RESTART], counted[RELOCATE]


# -- the controller's side ----------------------------------------------------

def _iso(value):
    return value.isoformat(timespec="seconds") + "Z"


class Recovery:
    """Created with the controller's services; the host poller calls
    ``host_silent``, ``host_answered`` and ``guest_down``."""

    def __init__(self, services):
        self.svc = services
        self.started = time.monotonic()
        self._said = {}             # host -> the last reason logged
        self._retries = {}          # host -> (runs so far, next run at)

    @property
    def store(self):
        return self.svc.store

    def begin(self):
        """The controller starts leading (at its start, or a standby
        taking over): the startup grace counts from now, as a controller
        that leads only now has not heard from every host yet."""
        self.started = time.monotonic()

    def grace_left(self):
        return CONF.ha.startup_grace - (time.monotonic() - self.started)

    def _note(self, name, why, event=False):
        if self._said.get(name) == why:
            return
        self._said[name] = why
        LOG.warning("host %s: %s", name, why)
        if event:
            self.store.add_host_event(name, "no_recovery", "Info", why)

    def host_answered(self, name):
        self._said.pop(name, None)
        self._retries.pop(name, None)

    def _retry_due(self, name):
        """A fenced host's HA instances that did not evacuate are tried
        again after fence_retry_interval, doubling each time (at most
        RETRY_MAX_S): capacity may have come back."""
        runs, due = self._retries.get(name, (0, 0.0))
        now = time.monotonic()
        if now < due:
            return False
        wait = min(RETRY_MAX_S, CONF.ha.fence_retry_interval * 2 ** runs)
        self._retries[name] = (runs + 1, now + wait)
        return True

    def host_silent(self, name, silent_s):
        """``name`` has not answered for ``silent_s`` seconds."""
        if not CONF.ha.enabled:
            return None
        try:
            host = self.store.get_host(name)
        except NotFound:
            return None
        on_host = self.store.list_instances(host=name)
        has_ha = any(ha_policy.is_ha(self.store, i) for i in on_host
                     if i["vm_state"] != states.DELETED)
        recovering = recover_host.in_progress(self.store, name) is not None
        what, why = host_verdict(host, silent_s, CONF.ha.lease_time, has_ha,
                                 recovering, self.grace_left())
        if what is None:
            if not recovering and silent_s >= CONF.ha.lease_time:
                self._note(name, why, event=not has_ha
                           and host["state"] != "fenced")
            return None
        if host["state"] == "fenced" and not self._retry_due(name):
            return None
        if host["state"] != "fenced":   # its first run: retries wait
            self._retries[name] = (1, time.monotonic()
                                   + CONF.ha.fence_retry_interval)
        self._note(name, why)
        try:
            return self.svc.admission.submit_host(
                RECOVER_OPERATION, name, reason=why, max_parallel=4)
        except (Conflict, DroverError) as err:
            LOG.warning("host %s: recovery not started: %s", name, err)
            return None

    def guest_down(self, inst, power_state):
        """An ACTIVE instance with no task found ``power_state`` (off or
        crashed) on its host: True if its recovery is taken care of here
        (it is HA), False to let the poller record it as stopped."""
        if not CONF.ha.enabled or power_state not in DOWN_POWER or \
                not ha_policy.is_ha(self.store, inst):
            return False
        since = _iso(utcnow() - datetime.timedelta(
            seconds=CONF.ha.restart_window))
        restarts, relocations = attempts(
            self.store.list_actions(inst["uuid"]), since)
        action = guest_action(restarts, relocations, CONF.ha.max_restart,
                              CONF.ha.max_relocate)
        seen = "crashed" if power_state == states.CRASHED else \
            "powered off without drover asking"
        LOG.warning("HA instance %s %s on %s: %s (%d restart(s), %d "
                    "relocation(s) so far)", inst["name"], seen,
                    inst["host"], action, restarts, relocations)
        try:
            if action == GIVE_UP:
                self._give_up(inst, power_state, seen, restarts,
                              relocations)
            else:
                self.svc.admission.submit(
                    action, inst["uuid"],
                    reason=f"{seen} on {inst['host']} (restart "
                           f"{restarts}/{CONF.ha.max_restart}, relocation "
                           f"{relocations}/{CONF.ha.max_relocate})")
        except (Conflict, DroverError) as err:
            LOG.warning("HA instance %s: %s not started: %s", inst["name"],
                        action, err)
            return False
        return True

    def _give_up(self, inst, power_state, seen, restarts, relocations):
        reason = (f"HA: {seen} on {inst['host']} again after {restarts} "
                  f"restart(s) and {relocations} relocation(s) within "
                  f"{CONF.ha.restart_window:g} s ([ha] max_restart, "
                  "max_relocate): left for the operator")
        self.store.update_instance(
            inst["uuid"], expected={"task_state": None, "host": inst["host"]},
            vm_state=states.ERROR, power_state=power_state, error=reason)
        act = self.store.start_action(inst["uuid"], GIVE_UP, message=reason)
        ev = self.store.start_event(act["id"], "ha_give_up")
        self.store.finish_event(ev["id"], "Error", reason)
        self.store.finish_action(act["id"])
