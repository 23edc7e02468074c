"""A simulated fleet for self-fencing, in simulated time: the real agent
guard (agent.host.lease, agent.host.peers, agent.host.self_fence) on
every host, the real LeaseBook and verdict on the controller, over a
network whose links a script cuts and restores.

    world = SelfFenceWorld(["h1", "h2", "h3"])
    world.boot("vm1", "h1", ha=True)
    world.at(5, lambda w: w.isolate("h1"))
    world.at(40, lambda w: w.rejoin("h1"))
    world.run(80)
    world.violations        # [] : no guest ever ran on two hosts

Time: ``now`` is true time; a destroyed guest is gone ``destroy_s``
later (1.8 s, LAB-NOTES' ``virsh destroy``); each host's and the
controller's monotonic clock is ``start + now * (1 + drift)`` (``drift``
per node), and each has a wall clock that scripts may jump
(``jump_wall``): nothing under test reads it, which is the point.
Events run in order of true time.

The controller side stands in for recovery's workflow
(agent.controller.ops.recover_host, built apart): every ``check_interval``
it asks ``verdict(host)`` of each host whose renewals fail for
lease_time, and evacuates the host's HA guests to a host it reaches only
on "fenced" (a "done" evacuation record, as issue 9's evacuation leaves).
The sampler checks every 0.2 s that no guest runs on two hosts.
"""
import heapq
import itertools

from agent.common.errors import Conflict, NotFound
from agent.conf import CONF
from agent.controller import states
from agent.controller.leases import LeaseBook
from agent.controller.self_fence import FENCED
from agent.host.lease import Lease
from agent.host.peers import Peers
from agent.host.self_fence import SelfFence
from agent.transport.errors import HostUnreachable

CONTROLLER = "ctl"
SAMPLE_S = 0.2


class NodeClock:
    """A node's clocks over the world's true time."""

    def __init__(self, world, start, drift=0.0):
        self.world, self.start, self.drift = world, start, drift
        self.wall_offset = 1.7e9

    def monotonic(self):
        return self.start + self.world.now * (1.0 + self.drift)

    def wall(self):
        return self.wall_offset + self.world.now


class SimHost:
    """A host: its domains ({uuid: running}) and its agent's guard."""

    def __init__(self, world, name, address, clock, opts):
        self.world, self.name, self.address = world, name, address
        self.clock = clock
        self.domains = {}
        self.powered = True
        self.agent_hung = False
        self.events = []
        self.boot_agent(opts)

    def boot_agent(self, opts):
        self.lease = Lease(clock=self.clock.monotonic, state_path=None,
                           boot_id="sim")
        self.peers = Peers(self.probe, clock=self.clock.monotonic,
                           workers=1)
        self.guard = SelfFence(
            self.lease, self.peers, self.destroy,
            peer_timeout=opts["peer_timeout"],
            interval=opts["renew_interval"], clock=self.clock.monotonic,
            publish=lambda e, d: self.events.append(
                (round(self.world.now, 1), d["message"])))

    def restart_agent(self, opts):
        """The agent process restarted (the systemd watchdog): a new guard
        over the lease state it kept in its file."""
        kept = self.lease
        self.peers = Peers(self.probe, clock=self.clock.monotonic,
                           workers=1)
        self.guard = SelfFence(
            kept, self.peers, self.destroy,
            peer_timeout=opts["peer_timeout"],
            interval=opts["renew_interval"], clock=self.clock.monotonic,
            publish=self.guard.publish)
        self.agent_hung = False

    def probe(self, address):
        peer = self.world.by_address[address]
        return self.world.reaches(self.name, peer.name)

    def destroy(self, uuid):
        """``virsh destroy``: the guest is gone ``destroy_s`` later."""
        running = self.domains.get(uuid, False)

        def gone(world):
            if uuid in self.domains:
                self.domains[uuid] = False
        if running:
            self.world.at(self.world.now + self.world.destroy_s, gone)
        return running

    def running(self):
        return sorted(u for u, r in self.domains.items() if r)

    # what the controller's calls do here
    def handle(self, method, params):
        if method == "host.lease_renew":
            return self.guard.lease_renew(**params)
        if method == "host.peer_view":
            return self.guard.peer_view()
        if method == "host.lease_clear":
            return self.guard.lease_clear()
        if method == "host.facts":
            return {"domains": [{"uuid": u, "state": "running" if r
                                 else "shutoff"}
                                for u, r in self.domains.items()]}
        uuid = params.get("uuid")
        if method == "instance.start":
            self.guard.check_start(uuid)
            if uuid not in self.domains:
                raise NotFound(f"no domain {uuid}")
            started = not self.domains[uuid]
            self.domains[uuid] = True
            return {"started": started}
        if method == "instance.destroy":
            return {"destroyed": self.destroy(uuid)}
        if method == "instance.undefine":
            return {"undefined": self.domains.pop(uuid, None) is not None}
        if method == "instance.cleanup":
            return {"removed": False}
        raise NotImplementedError(method)


class SimStore:
    """The store's records that leases and return_host use."""

    def __init__(self):
        self.hosts = {}
        self.instances = {}
        self.migrations = []
        self.tasks = []

    def list_hosts(self):
        return [dict(self.hosts[n]) for n in sorted(self.hosts)]

    def get_host(self, name):
        return dict(self.hosts[name])

    def host_returned(self, name):
        self.hosts[name]["state"] = "up"

    def list_instances(self, host=None):
        return [dict(i) for i in self.instances.values()
                if host is None or i["host"] == host]

    def get_instance(self, uuid, deleted=False):
        if uuid not in self.instances:
            raise NotFound(f"instance {uuid}")
        return dict(self.instances[uuid])

    def update_instance(self, uuid, expected=None, **values):
        inst = self.instances[uuid]
        for key, want in (expected or {}).items():
            if inst.get(key) != want:
                raise Conflict(f"instance {uuid}: {key} is {inst.get(key)}")
        inst.update(values)
        return dict(inst)

    def list_migrations(self, type=None, host=None, instance_uuid=None):
        return [dict(m) for m in self.migrations
                if (type is None or m["type"] == type)
                and (host is None or host in (m["source_host"],
                                              m["dest_host"]))
                and (instance_uuid is None
                     or m["instance_uuid"] == instance_uuid)]

    def update_migration(self, uuid, **values):
        for m in self.migrations:
            if m["uuid"] == uuid:
                m.update(values)

    def list_tasks(self, unfinished=False):
        return [dict(t) for t in self.tasks]

    def list_cleanups(self, host=None):
        return []

    def list_allocations(self, host=None):
        return []

    def release(self, consumer, host=None):
        return None


class SelfFenceWorld:
    def __init__(self, hosts=("h1", "h2", "h3"), *, lease_time=10.0,
                 renew_interval=2.0, lease_margin=3.0, peer_timeout=4.0,
                 drift=None, fence_agents=(), check_interval=1.0,
                 destroy_s=1.8, phases=None):
        self.now = 0.0
        self.destroy_s = destroy_s      # LAB-NOTES: virsh destroy 1.8 s
        self.opts = {"lease_time": lease_time,
                     "renew_interval": renew_interval,
                     "lease_margin": lease_margin,
                     "peer_timeout": peer_timeout}
        for key, value in self.opts.items():     # what LeaseBook reads
            CONF.set_override(key, value, "ha")
        drift = drift or {}
        self._events = []
        self._seq = itertools.count()
        self.cut = set()            # frozenset({a, b}) of cut links
        self.hosts = {}
        self.by_address = {}
        self.store = SimStore()
        self.log = []               # (time, line) of what the world did
        self.violations = []        # (time, uuid, hosts) ran twice
        self.verdicts = {}          # host -> [(time, state)]
        self.evacuated = {}         # uuid -> (time, from, to)
        for i, name in enumerate(hosts):
            address = f"198.18.0.{11 + i}"
            clock = NodeClock(self, 5000.0 + 777 * i, drift.get(name, 0.0))
            host = SimHost(self, name, address, clock, self.opts)
            self.hosts[name] = host
            self.by_address[address] = host
            self.store.hosts[name] = {
                "name": name, "address": address, "state": "up",
                "forced_down": False,
                "fence_agent": "fence_sim" if name in fence_agents
                else None}
        self.ctl_clock = NodeClock(self, 100.0, drift.get(CONTROLLER, 0.0))
        self.book = LeaseBook(self.store, self.call, submit=self.submit,
                              clock=self.ctl_clock.monotonic, workers=1,
                              is_ha=lambda store, i: i.get("ha", False))
        for i, name in enumerate(hosts):
            # Agents' rounds out of phase with one another (``phases``:
            # the time of a host's first round).
            self.every(renew_interval, self._guard_tick(name),
                       first=(phases or {}).get(name, 0.3 + 0.37 * i))
        self.every(renew_interval, lambda w: w.book.renew_all(), first=0.0)
        self.every(check_interval, lambda w: w.recover(), first=0.5)
        self.every(SAMPLE_S, lambda w: w.sample(), first=0.0)

    def close(self):
        for key in self.opts:
            CONF.clear_override(key, "ha")

    # -- scheduling ---------------------------------------------------------

    def at(self, when, fn):
        heapq.heappush(self._events, (when, next(self._seq), fn))

    def every(self, interval, fn, first=0.0):
        def again(world):
            fn(world)
            world.at(world.now + interval, again)
        self.at(first, again)

    def run(self, until):
        while self._events and self._events[0][0] <= until:
            when, _, fn = heapq.heappop(self._events)
            self.now = max(self.now, when)
            fn(self)
        self.now = until

    def _guard_tick(self, name):
        def tick(world):
            host = world.hosts[name]
            if host.powered and not host.agent_hung:
                host.guard.tick()
        return tick

    # -- the network and faults ----------------------------------------------

    def reaches(self, a, b):
        for n in (a, b):
            if n != CONTROLLER and not self.hosts[n].powered:
                return False
        return frozenset((a, b)) not in self.cut

    def cut_link(self, a, b):
        self.cut.add(frozenset((a, b)))

    def restore_link(self, a, b):
        self.cut.discard(frozenset((a, b)))

    def isolate(self, name):
        """The host's own link cut: it reaches no one, no one reaches it."""
        for other in list(self.hosts) + [CONTROLLER]:
            if other != name:
                self.cut_link(name, other)
        self.note(f"{name} isolated")

    def rejoin(self, name):
        for other in list(self.hosts) + [CONTROLLER]:
            self.restore_link(name, other)
        self.note(f"{name} link restored")

    def switch_down(self):
        """Every host cut from every other and from the controller."""
        names = list(self.hosts) + [CONTROLLER]
        for a, b in itertools.combinations(names, 2):
            self.cut_link(a, b)
        self.note("switch down")

    def switch_up(self):
        self.cut.clear()
        self.note("switch up")

    def hang_agent(self, name, watchdog_s=None):
        """The agent hangs (sshd still answers probes); with
        ``watchdog_s`` systemd restarts it that long after (WatchdogSec
        plus RestartSec)."""
        self.hosts[name].agent_hung = True
        self.note(f"{name} agent hung")
        if watchdog_s is not None:
            self.at(self.now + watchdog_s, lambda w: w._watchdog(name))

    def _watchdog(self, name):
        self.hosts[name].restart_agent(self.opts)
        self.note(f"{name} agent restarted by the watchdog")

    def restart_controller(self):
        """A new controller process: a LeaseBook that knows no grant."""
        self.book = LeaseBook(self.store, self.call, submit=self.submit,
                              clock=self.ctl_clock.monotonic, workers=1,
                              is_ha=self.book.is_ha)
        self.note("controller restarted")

    def jump_wall(self, seconds, nodes=None):
        for clock in self._clocks(nodes):
            clock.wall_offset += seconds
        self.note(f"wall clocks jump {seconds:+g} s")

    def _clocks(self, nodes):
        names = nodes or list(self.hosts) + [CONTROLLER]
        return [self.ctl_clock if n == CONTROLLER else self.hosts[n].clock
                for n in names]

    def note(self, line):
        self.log.append((round(self.now, 1), line))

    # -- the controller's calls -----------------------------------------------

    def call(self, host, method, timeout=None, **params):
        node = self.hosts[host]
        if not self.reaches(CONTROLLER, host) or node.agent_hung:
            raise HostUnreachable(f"host {host}: no route")
        return node.handle(method, params)

    def submit(self, operation, uuid):
        """Admission's start of a guest, as the start workflow does it."""
        assert operation == "start"
        inst = self.store.instances[uuid]
        self.call(inst["host"], "instance.start", uuid=uuid)
        inst.update(vm_state=states.ACTIVE, power_state=states.RUNNING)
        self.note(f"{uuid} started again on {inst['host']}")

    # -- guests --------------------------------------------------------------

    def boot(self, uuid, host, ha=True):
        self.hosts[host].domains[uuid] = True
        self.store.instances[uuid] = {
            "uuid": uuid, "name": uuid, "host": host, "ha": ha,
            "vm_state": states.ACTIVE, "task_state": None,
            "storage": "shared", "guest_metadata": {}}

    def where_running(self, uuid):
        return sorted(n for n, h in self.hosts.items()
                      if h.powered and h.domains.get(uuid))

    def sample(self):
        for uuid in self.store.instances:
            where = self.where_running(uuid)
            if len(where) > 1:
                self.violations.append((round(self.now, 1), uuid, where))

    # -- recovery's stand-in --------------------------------------------------

    def recover(self):
        """Evacuate a silent host's HA guests only on "fenced"."""
        lease_time = self.opts["lease_time"]
        for name in self.hosts:
            silent = self.ctl_clock.monotonic() - self.book.last_granted(name)
            if silent < lease_time:
                continue
            verdict = self.book.verdict(name)
            history = self.verdicts.setdefault(name, [])
            if not history or history[-1][1] != verdict.state:
                history.append((round(self.now, 1), verdict.state))
                self.note(f"verdict {name}: {verdict.state}: "
                          f"{verdict.reason}")
            if verdict.state == FENCED:
                self.evacuate(name)

    def evacuate(self, source):
        known = set(self.book.acknowledged_ha(source))
        for inst in self.store.list_instances(host=source):
            if inst["uuid"] not in known:
                continue
            target = self._target(source)
            if target is None:
                self.note(f"no host to evacuate {inst['uuid']} to")
                return
            self.hosts[target].domains[inst["uuid"]] = True
            self.store.instances[inst["uuid"]]["host"] = target
            self.store.migrations.append({
                "uuid": f"mig-{inst['uuid']}-{len(self.store.migrations)}",
                "type": "evacuation", "instance_uuid": inst["uuid"],
                "source_host": source, "dest_host": target,
                "status": states.MIG_DONE, "progress": {}})
            self.evacuated[inst["uuid"]] = (round(self.now, 1), source,
                                            target)
            self.note(f"{inst['uuid']} evacuated {source} -> {target}")

    def _target(self, source):
        for name in sorted(self.hosts):
            if name != source and self.reaches(CONTROLLER, name):
                return name
        return None

    # -- what a test reads ----------------------------------------------------

    def destroyed_by_fence(self, name):
        return [m for _, m in self.hosts[name].events
                if m.startswith("HA guest")]

    def fenced(self, name):
        return self.hosts[name].lease.status()["fenced"]

    def states(self, name):
        return [s for _, s in self.verdicts.get(name, [])]
