"""A simulated fleet behind the controller's HostManager, with faults a
test injects at any moment.

    fleet = Fleet(["h1", "h2"])
    svc = fleet.controller(store)   # Services: store, hosts, engine, admission
    fleet.at_step("copy", lambda f: f.power_off("h1"))
    svc.admission.submit("migrate", "vm1")     # runs to its end (inline)
    fleet.power_on("h1")                   # back, its guests shut off
    svc = fleet.restart_controller()       # new engine, resume_all

Faults: ``power_off``/``power_on`` (off loses what is volatile: running
guests, the agent's jobs; disks stay), ``cut``/``restore`` (the host's
network: calls raise HostUnreachable, host-to-host copies fail),
``crash_agent``/``restart_agent`` (its jobs are lost, domains survive),
``fill_disk``/``free_disk``, ``fail(host, method, error)`` and
``fail_next_call(error, step)``; hooks ``at_step(name, fn)`` (when a
task's step starts, or ``when="done"``: after its work, before the store
records it), ``at_call(k, fn)`` (before the k-th agent call) and
``before_calls(fn)``.  ``ControllerCrash`` raised from a hook stops the
controller there (a BaseException: the engine does not catch it);
``restart_controller`` is a new TaskEngine on the same store that resumes
what was in flight.

Time is simulated: ``clock.install()`` gives the controller's modules a
clock whose ``sleep`` returns at once (running events due by then).
"""
import copy
import datetime
import hashlib
import heapq
import itertools
import json
import os
import sys
import time as _walltime

from agent.common.errors import DroverError
from agent.controller.admission import Admission
from agent.controller.daemon import Services
from agent.controller.db.models import jsonable, utcnow
from agent.controller.hosts import HostManager
from agent.controller.recovery import Recovery
from agent.controller.tasks.actionlog import ActionTaskLog
from agent.controller.tasks.engine import TaskEngine
from agent.common.rpc import protocol as proto
from agent.sim.agent import SimAgent
from agent.sim.world import World
from agent.transport.errors import AgentError, HostUnreachable

LIBVIRT_ERROR = "internal error: unable to execute QEMU command: simulated"


class ControllerCrash(BaseException):
    """The controller process died at this point."""


class SimClock:
    """Seconds since the start of the simulation; events at given times."""

    START = 1000.0

    def __init__(self):
        self.now = self.START
        self._events = []
        self._seq = itertools.count()

    def monotonic(self):
        return self.now

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.advance(max(float(seconds), 0.0))

    def at(self, delay, fn):
        heapq.heappush(self._events, (self.now + delay, next(self._seq),
                                      fn))

    def advance(self, seconds):
        until = self.now + seconds
        while self._events and self._events[0][0] <= until:
            when, _, fn = heapq.heappop(self._events)
            self.now = max(self.now, when)
            fn()
        self.now = until

    def install(self):
        """Replace the ``time`` module in the controller's modules that
        use it; returns a function that puts it back."""
        patched = []
        for name, mod in list(sys.modules.items()):
            if name.startswith("agent.controller.") and \
                    getattr(mod, "time", None) is _walltime:
                mod.time = self
                patched.append(mod)

        def uninstall():
            for mod in patched:
                mod.time = _walltime
        return uninstall


class SimClient:
    """What HostManager.client returns: an agent client of one host."""

    def __init__(self, fleet, name):
        self.fleet, self.host = fleet, name

    def call(self, method, timeout=None, **params):
        return self.fleet.rpc(self.host, method, params)

    def subscribe(self, on_event):
        pass

    def close(self):
        pass


class SimHosts(HostManager):
    """The controller's HostManager, its agents simulated."""

    def __init__(self, store, fleet):
        super().__init__(store)
        self.fleet = fleet
        self.known = set()

    def client(self, name):
        if name not in self.known:
            self.store.get_host(name)   # NotFound for an unknown host
            self.known.add(name)
        return self.fleet.clients[name]

    def forget(self, name):
        self.known.discard(name)
        super().forget(name)

    def now(self):
        """The wall clock moved on by the simulated time elapsed."""
        elapsed = self.fleet.clock.now - SimClock.START
        return jsonable(utcnow() + datetime.timedelta(seconds=elapsed))

    def upload(self, host, local_path, remote_path):
        self.store.get_host(host)
        content = None
        if os.path.isfile(local_path):      # a snapshot in the store
            with open(local_path) as f:
                content = f.read()
        self.fleet.rpc(host, "upload", {"remote_path": remote_path,
                                        "content": content}, internal=True)

    def download(self, host, remote_path, local_path):
        self.store.get_host(host)
        content = self.fleet.rpc(host, "download",
                                 {"remote_path": remote_path},
                                 internal=True)
        with open(local_path, "w") as f:
            f.write(content)
        return {"size": len(content.encode()),
                "sha256": hashlib.sha256(content.encode()).hexdigest()}


class WatchedLog:
    """The task log the engine writes, with the fleet's step hooks."""

    def __init__(self, log, fleet):
        self._log, self._fleet = log, fleet
        self._kinds = {}

    def __getattr__(self, name):
        return getattr(self._log, name)

    def _kind(self, task_id):
        if task_id not in self._kinds:
            self._kinds[task_id] = self._log.task_get(task_id)["kind"]
        return self._kinds[task_id]

    def step_begin(self, task_id, index, name, cancellable=True,
                   done=None):
        if done is not None:
            self._fleet.step_reached(self._kind(task_id), done[0], "done")
        out = self._log.step_begin(task_id, index, name,
                                   cancellable=cancellable, done=done)
        if out["interrupt"] is None:
            self._fleet.step_reached(self._kind(task_id), name, "start")
        return out

    def task_finish(self, task_id, state, error=None, done=None):
        if done is not None:
            self._fleet.step_reached(self._kind(task_id), done[0], "done")
        self._log.task_finish(task_id, state, error, done=done)

    def step_failed(self, task_id, name, error):
        self._fleet.step = None         # undoing now
        self._log.step_failed(task_id, name, error)


class Fleet:
    def __init__(self, names=("h1", "h2", "h3"), **host_args):
        self.world = World()
        self.clock = SimClock()
        self.agents, self.clients = {}, {}
        for name in names:
            self.add_host(name, **host_args)
        self.calls = []                 # (host, method) of every call
        self._step_hooks = []           # [kind, name, when, fn]
        self._call_hooks = {}           # k -> fn
        self._watches = []              # fn(fleet, host, method) -> done
        self._fail_next = None          # (error, step name or None)
        self.step = None                # the step running now
        self.svc = None

    def add_host(self, name, **host_args):
        host = self.world.add_host(name, **host_args)
        self._attach(host)
        return host

    def _attach(self, host):
        self.agents[host.name] = SimAgent(self.world, host)
        self.clients[host.name] = SimClient(self, host.name)

    def snapshot(self):
        """A copy of the world and the clock, for ``from_snapshot``; take
        it between operations (a job in flight is not copied with it)."""
        return copy.deepcopy((self.world, self.clock.now))

    @classmethod
    def from_snapshot(cls, snapshot):
        """A fleet in the state ``snapshot`` recorded."""
        fleet = cls(names=())
        fleet.world, fleet.clock.now = copy.deepcopy(snapshot)
        for host in fleet.world.hosts.values():
            fleet._attach(host)
        return fleet

    def host(self, name):
        return self.world.hosts[name]

    # -- the controller side ----------------------------------------------

    def controller(self, store, workflows=None, register=True):
        """Services over ``store`` with this fleet's hosts registered
        (``register``: recorded in the store with their facts)."""
        from agent.controller.ops import WORKFLOWS
        self._workflows = workflows or WORKFLOWS
        self._store = store
        for name, host in self.world.hosts.items():
            if not register:
                break
            facts = self.agents[name].host_facts()
            store.upsert_host(name, address=host.address, facts=facts)
        return self._new_services()

    def _new_services(self):
        svc = Services(store=self._store,
                       hosts=SimHosts(self._store, self))
        svc.engine = TaskEngine(WatchedLog(ActionTaskLog(self._store), self),
                                self._workflows, svc, max_workers=2,
                                inline=True)
        svc.admission = Admission(svc)
        svc.hosts.recovery = Recovery(svc)
        self.svc = svc
        return svc

    def restart_controller(self):
        """A new controller on the same store: resumes what was in flight
        and waits for it to end.  Returns the new Services."""
        if self.svc is not None:
            self.svc.engine.shutdown(wait=True)
        svc = self._new_services()
        for task_id in svc.engine.resume_all():
            svc.engine.wait(task_id)
        return svc

    def poll(self):
        """The controller's poll of every host (facts, power-state sync)."""
        for name in self.world.hosts:
            self.svc.hosts.poll_host(name)

    # -- calls ------------------------------------------------------------

    def rpc(self, name, method, params, internal=False):
        host = self.world.hosts[name]
        if not internal:
            self.calls.append((name, method))
            hook = self._call_hooks.pop(len(self.calls), None)
            if hook is not None:
                hook(self)
            for watch in list(self._watches):
                if watch(self, name, method):
                    self._watches.remove(watch)
        if not host.powered:
            raise HostUnreachable(f"ssh: connect to host {host.address} "
                                  "port 22: No route to host")
        if not host.linked:
            raise HostUnreachable(f"connection to {name} lost: timed out")
        if not host.agent_up:
            raise HostUnreachable(f"{name}: the agent's socket is not "
                                  "there (drover-agent not running)")
        if not internal:
            self._injected(name, method)
        try:
            result = self.agents[name].call(method, **params) \
                if not internal else getattr(self.agents[name], method)(
                    **params)
        except Exception as err:    # as it crosses the wire
            raise proto.error_from_body(proto.error_body(err),
                                        AgentError) from None
        return json.loads(json.dumps(result))

    def _injected(self, name, method):
        if self._fail_next is not None and \
                self._fail_next[1] in (None, self.step):
            err, self._fail_next = self._fail_next[0], None
            raise err
        for entry in self.world.hosts[name].failures:
            if entry[0] == method and entry[2] > 0:
                entry[2] -= 1
                raise entry[1]

    # -- faults -----------------------------------------------------------

    def power_off(self, name):
        host = self.host(name)
        host.powered = False
        host.lose_volatile()

    def power_on(self, name):
        """Back with its guests shut off, the agent started afresh."""
        host = self.host(name)
        if not host.powered:
            host.powered, host.agent_up = True, True

    def cut(self, name):
        self.host(name).linked = False

    def restore(self, name):
        self.host(name).linked = True

    def crash_agent(self, name):
        host = self.host(name)
        host.agent_up = False
        host.lose_jobs()

    def restart_agent(self, name):
        self.host(name).agent_up = True

    def fill_disk(self, name):
        self.host(name).disk_full = True

    def free_disk(self, name):
        self.host(name).disk_full = False

    def fail(self, name, method, error=None, times=1):
        """The next ``times`` calls of ``method`` on ``name`` raise."""
        self.host(name).failures.append(
            [method, error or DroverError(LIBVIRT_ERROR), times])

    def fail_next_call(self, error=None, step=None):
        """The next agent call raises ``error`` (a libvirt error by
        default); with ``step``, only a call that step makes."""
        self._fail_next = (error or DroverError(LIBVIRT_ERROR), step)

    def heal(self):
        """Every host on, reachable, its agent running, room on disk; no
        error or call hook left armed."""
        for name, host in self.world.hosts.items():
            self.power_on(name)
            host.linked = host.agent_up = True
            host.disk_full = False
            host.failures.clear()
        self._fail_next = None
        self._call_hooks.clear()
        self._watches.clear()

    # -- hooks ------------------------------------------------------------

    def at_step(self, name, fn, kind=None, when="start"):
        """``fn(fleet)`` when a task (of ``kind``, any if None) reaches
        step ``name``: as it starts, or ``when="done"`` after its work
        and before the store records it.  Once."""
        self._step_hooks.append([kind, name, when, fn])

    def at_call(self, k, fn):
        """``fn(fleet)`` before the k-th agent call (counting from 1)."""
        self._call_hooks[k] = fn

    def before_calls(self, fn):
        """``fn(fleet, host, method)`` before every agent call until it
        returns True."""
        self._watches.append(fn)

    def pending_hooks(self):
        """Step hooks that have not fired yet."""
        return len(self._step_hooks)

    def step_reached(self, kind, name, when):
        self.step = name if when == "start" else None
        for hook in list(self._step_hooks):
            if hook[0] in (None, kind) and hook[1] == name and \
                    hook[2] == when:
                self._step_hooks.remove(hook)
                hook[3](self)

    # -- what tests read ----------------------------------------------------

    def inventory(self):
        """What every host holds, reachable or not: (domains with state,
        directories per namespace)."""
        out = {}
        for name, host in self.world.hosts.items():
            out[name] = {u: d.state for u, d in host.domains.items()}
        return out
