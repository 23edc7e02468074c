"""Evacuation scenarios on the simulated fleet: SimLab with the verbs of
evacuation (fence, host set --down/--up, evacuate, host evacuate, the
poller's detection of a dead host) and a watch of the two promises made
at every agent call and after every event of a script.

The watch (``EvacLab.violations``):

- no guest runs on two hosts: ``world.where_running(uuid)`` has at most
  one host, for every uuid defined anywhere in the fleet;
- no disk holding the only copy of a guest's data is deleted: every
  instance whose data existed (a boot made it) still has a disk holding
  it somewhere (the judge's DATA LOST check, made continuously).

Fencing uses a real fence agent (a tiny script of the fence-agents
protocol written in the test's tmp_path): ``action=off`` leaves a mark
``<state_dir>/<port>.off``; the simulated host named ``port`` is powered
off as the fence task's step ends (the BMC powers it off), so a fenced
host is off in the world too.  ``FAILING_AGENT`` always fails, as a
fence agent whose BMC does not answer.
"""
import os
import stat

from agent.common.errors import DroverError
from agent.conf import CONF
from agent.controller.api import hosts as hosts_api
from agent.controller.ops import WORKFLOWS
from agent.sim.fleet import ControllerCrash
from sim_helpers import POLL_S, VERBS, SimLab

HOST_EVENTS = ("power_off", "power_on", "cut", "restore", "crash_agent",
               "restart_agent", "fill_disk", "free_disk")

FENCE_AGENT = """#!/bin/sh
# fence-agents protocol: key=value lines on stdin, action= among them.
action=; port=; state_dir=
while IFS='=' read -r key value; do
  case "$key" in
    action) action=$value ;; port) port=$value ;;
    state_dir) state_dir=$value ;;
  esac
done
case "$action" in
  off) : > "$state_dir/$port.off"; echo "Success: Powered OFF"; exit 0 ;;
  status)
    if [ -e "$state_dir/$port.off" ]; then echo "Status: OFF"; exit 2; fi
    echo "Status: ON"; exit 0 ;;
  *) echo "Failed: unknown action $action"; exit 1 ;;
esac
"""
FAILING_AGENT = """#!/bin/sh
cat > /dev/null
echo "Failed: Unable to connect/login to fencing device" >&2
exit 1
"""


def steps_of(kind, params=None):
    """The step names of workflow ``kind``, read from the workflow."""
    return [s.name for s in WORKFLOWS[kind](params or {}).steps]


def _crash(fleet):
    raise ControllerCrash()


def _script(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


class EvacLab(SimLab):
    """SimLab for evacuation scripts; ``run(commands)`` plays them."""

    def __init__(self, tmp_path, **kwargs):
        super().__init__(tmp_path, **kwargs)
        self.fence_dir = tmp_path / "fence"
        self.fence_dir.mkdir()
        self.agents = {
            "ok": _script(tmp_path / "fence_sim", FENCE_AGENT),
            "failing": _script(tmp_path / "fence_broken", FAILING_AGENT)}
        for name in self.fleet.world.hosts:
            self.set_fence_agent(name, "ok")
        self.log = []
        self.messages = []          # refusals and task errors, in order
        self.reports = {}           # host -> host evacuate report
        self.violations = []
        self.had_data = set()
        self.fleet.before_calls(self._watch)

    def set_fence_agent(self, host, which):
        self.store.set_fence_method(host, self.agents[which], {
            "port": host, "state_dir": str(self.fence_dir)})

    # -- the watch of the two promises ------------------------------------

    def _watch(self, fleet, host, method):
        self.check(f"before {method} on {host} (step {fleet.step})")
        return False                # keep watching

    def check(self, when):
        world = self.fleet.world
        uuids = {u for h in world.hosts.values() for u in h.domains}
        names = self._names()
        for uuid in sorted(uuids):
            running = world.where_running(uuid)
            if len(running) > 1:
                self.violations.append(
                    f"{when}: {names.get(uuid, uuid)} runs on {running}")
        self.had_data |= {i["uuid"] for i in self.store.list_instances()
                          if self.data_anywhere(i["uuid"])}
        alive = {i["uuid"]: i["name"] for i in self.store.list_instances()}
        for uuid in sorted(self.had_data & set(alive)):
            if not self.data_anywhere(uuid):
                self.violations.append(f"{when}: {alive[uuid]}: DATA LOST "
                                       "(no disk holds it)")

    def data_anywhere(self, uuid):
        return any(d.data == f"data-{uuid}"
                   for dirs in self.fleet.world.storage.values()
                   for d in dirs.values())

    # -- verbs ------------------------------------------------------------

    def _task(self, verb, target, submit):
        """Run ``submit`` through SimLab's runner; log its outcome (a
        refusal: "refused", its message kept)."""
        try:
            task = self._run(submit)
        except DroverError as err:
            self.messages.append(str(err))
            self.log.append((verb, target, "refused"))
            return None
        if task is not None and task["error"]:
            self.messages.append(task["error"])
        self.log.append((verb, target, task["state"] if task else "crashed"))
        return task

    def evacuate(self, name, **params):
        return self._task("evacuate", name, lambda: self.svc.admission.submit(
            "evacuate", name, supersede=True, **params))

    def host_evacuate(self, host, **params):
        task = self._task("host_evacuate", host,
                          lambda: self.svc.admission.submit_host(
                              "host-evacuate", host, **params))
        if task is not None and task["state"] == "done":
            report = self.store.steps_get(task["id"])[0]["data"]["report"]
            self.reports[host] = sorted(
                (r["Server"], r["Result"], r["Destination"])
                for r in report)
            self.messages += [r["Reason"] for r in report if r["Reason"]]
        return task

    def fence(self, host):
        """``host fence``: the fence task; the BMC powers the host off if
        its agent's action=off ran."""
        task = self._task("fence", host, lambda: self.svc.admission
                          .submit_host("fence", host))
        if task is not None:
            self.messages += [self.store.get_host(host)["fence_error"]
                              or ""]
        mark = self.fence_dir / f"{host}.off"
        if mark.exists():
            os.unlink(mark)
            self.fleet.power_off(host)
        return task

    def set_down(self, host):
        hosts_api.host_set_down(self.svc, host)
        self.log.append(("set_down", host, "done"))

    def set_up(self, host):
        try:
            hosts_api.host_set_up(self.svc, host)
            self.log.append(("set_up", host, "done"))
        except DroverError as err:
            self.messages.append(str(err))
            self.log.append(("set_up", host, "refused"))

    def poll(self):
        """One poll of every host; the controller may die in it."""
        self.fleet.clock.advance(POLL_S)
        try:
            self.fleet.poll()
        except ControllerCrash:
            self.crashed = True
            self.log.append(("poll", "-", "crashed"))

    def crash_at(self, host, method):
        """The controller dies before its next ``method`` call on
        ``host``."""
        fired = []

        def watch(fleet, at, called):
            if (at, called) == (host, method) and not fired:
                fired.append(called)
                raise ControllerCrash()
            return bool(fired)
        self.fleet.before_calls(watch)

    def until_down(self):
        """Polls until [controller] host_down_after has passed without an
        answer from the hosts that cannot be reached."""
        for _ in range(int(CONF.controller.host_down_after / POLL_S) + 2):
            self.poll()

    def hosts(self):
        return [(h["name"], h["state"]) for h in self.store.list_hosts()]

    # -- scripts ------------------------------------------------------------

    def run(self, commands):
        for command in commands:
            self.one(command)
            self.check(f"after {command}")
        return self.log

    def one(self, command):
        what, *args = command
        params = args[1] if len(args) > 1 else {}
        if what == "boot":
            task = self.boot(args[0], **params)
            self.log.append(("boot", args[0],
                             task["state"] if task else "crashed"))
        elif what in VERBS:
            task = self.op(what, args[0], **params)
            if task is not None and task["error"]:
                self.messages.append(task["error"])
            self.log.append((what, args[0],
                             task["state"] if task else "crashed"))
        elif what == "evacuate":
            self.evacuate(args[0], **params)
        elif what == "host_evacuate":
            self.host_evacuate(args[0], **params)
        elif what in ("fence", "set_down", "set_up"):
            getattr(self, what)(args[0])
        elif what == "host_state":
            self.log.append(("host_state", args[0],
                             self.store.get_host(args[0])["state"]))
        elif what == "crash_at":
            self.crash_at(*args)
        elif what == "fence_agent":
            self.set_fence_agent(*args)
        elif what in HOST_EVENTS:
            getattr(self.fleet, what)(args[0])
        elif what == "at_step":
            step, then = args[0], args[1]
            kind = args[2] if len(args) > 2 else None
            when = args[3] if len(args) > 3 else "start"
            self.fleet.at_step(step, _crash if then == ("controller_crash",)
                               else lambda f: self.one(then), kind=kind,
                               when=when)
        elif what == "restart_controller":
            self.restart_controller()
        elif what == "periodic":
            self.periodic()
        elif what == "poll":
            self.poll()
        elif what == "until_down":
            self.until_down()
        elif what == "heal":
            self.fleet.heal()
            self.fleet.before_calls(self._watch)   # heal drops watches
        else:
            raise ValueError(f"unknown scenario command {what!r}")

    def tables(self):
        return {"log": self.log, "instances": self.instances(),
                "migrations": self.migrations(), "claims": self.claims(),
                "domains": self.domains(),
                "directories": self.directories(), "hosts": self.hosts(),
                "reports": self.reports,
                "audit": sorted(f["kind"] for f in self.audit())}

    def says(self, text):
        """True if a refusal or task error recorded contains ``text``."""
        return any(text in m for m in self.messages if m)

