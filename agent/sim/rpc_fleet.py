"""A simulated fleet behind the real agent RPC: hundreds of simulated
agents (agent.sim.agent.SimAgent over agent.sim.world), each serving the
agent's method table (agent.common.rpc.methods.AGENT) with the real RPC
server on a UNIX socket of its own, in a few processes; the controller
reaches them with its real client through agent.transport.unix.

    fleet = RpcFleet(1000, directory, processes=4, image_ids=[image_uuid])
    fleet.start()
    svc = fleet.controller(store)       # the real Services, hosts added
    fleet.power_off(["h0007", ...])      # their agents stop answering
    fleet.domains()                      # {host: [{uuid, state, vcpus,
                                         #          memory_mib}]}
    fleet.close()

Each process has one World: hosts of one process share nothing on disk
(no shared storage), and a move between hosts of two processes would not
find its destination, so this fleet serves polls, boots, stops and
deletes, not migrations (agent.sim.fleet, in-process, has those).  The
simulated agents publish no lifecycle events.  Calls within one process
run one at a time (the World is not thread-safe); they take
microseconds.
"""
import functools
import multiprocessing
import os
import threading

from agent.common.rpc import methods as rpc_methods
from agent.common.rpc.server import RpcServer
from agent.controller.admission import Admission
from agent.controller.daemon import Services
from agent.controller.hosts import HostManager
from agent.controller.load import LoadHistory
from agent.controller.ops import WORKFLOWS
from agent.controller.tasks.actionlog import ActionTaskLog
from agent.controller.tasks.engine import TaskEngine
from agent.sim.agent import SimAgent
from agent.sim.world import World
from agent.transport.unix import UnixConnections


def address_of(index):
    return f"10.200.{index // 250}.{index % 250 + 1}"


def _serialised(fn, lock):
    @functools.wraps(fn)
    def call(**params):
        with lock:
            return fn(**params)
    return call


def _serve(directory, hosts, host_args, image_ids, conn):
    """One worker process: serve ``hosts`` [(name, address)] until told
    to close; commands come on ``conn``."""
    world, lock, servers = World(), threading.Lock(), {}
    for name, address in hosts:
        host = world.add_host(name, address=address, shared=False,
                              **host_args)
        host.images.update(image_ids)
        agent = SimAgent(world, host)
        server = RpcServer(os.path.join(directory, f"{address}.sock"),
                           methods=rpc_methods.AGENT)
        for method in rpc_methods.AGENT:
            server.register(method, _serialised(
                getattr(agent, method.replace(".", "_")), lock))
        server.check_complete()
        server.start()
        servers[name] = server
    conn.send("ready")
    while True:
        command, names = conn.recv()
        if command == "close":
            break
        if command == "power_off":
            for name in names:
                if name in servers:
                    servers.pop(name).stop()
                    with lock:
                        world.hosts[name].powered = False
                        world.hosts[name].lose_volatile()
            conn.send("done")
        elif command == "domains":
            with lock:
                conn.send({h.name: [{"uuid": d.uuid, "state": d.state,
                                     "vcpus": d.vcpus,
                                     "memory_mib": d.memory_mib}
                                    for d in h.domains.values()]
                           for h in world.hosts.values()})
    for server in servers.values():
        server.stop()
    conn.send("closed")


class RpcFleet:
    """``count`` simulated hosts h0000..., served by ``processes``
    worker processes; ``host_args``: World.add_host's (vcpus, memory_mb,
    disk_gb); ``image_ids``: images already in every host's cache."""

    def __init__(self, count, directory, processes=4, image_ids=(),
                 **host_args):
        self.directory = directory
        self.hosts = [(f"h{i:04d}", address_of(i)) for i in range(count)]
        self.processes = max(1, min(processes, count))
        self.host_args = host_args
        self.image_ids = list(image_ids)
        self._workers = []      # (process, conn, set of host names)

    def start(self):
        ctx = multiprocessing.get_context("spawn")
        for k in range(self.processes):
            share = self.hosts[k::self.processes]
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=_serve, name=f"sim-agents-{k}",
                               args=(self.directory, share, self.host_args,
                                     self.image_ids, theirs), daemon=True)
            proc.start()
            self._workers.append((proc, ours, {n for n, _ in share}))
        for proc, conn, _ in self._workers:
            if not conn.poll(120) or conn.recv() != "ready":
                raise RuntimeError(f"{proc.name} did not start")

    def controller(self, store, register=True):
        """The controller's Services over ``store`` (its real HostManager,
        TaskEngine and Admission), reaching this fleet's agents; with
        ``register``, every host added as ``host add`` does."""
        load = LoadHistory()            # as the daemon builds it
        hosts = HostManager(store, connections=UnixConnections(
            self.directory), load=load)
        svc = Services(store=store, hosts=hosts, load=load)
        svc.engine = TaskEngine(ActionTaskLog(store), WORKFLOWS, svc)
        svc.admission = Admission(svc)
        if register:
            for name, address in self.hosts:
                hosts.register(name, address)
        return svc

    def pids(self):
        return [proc.pid for proc, _, _ in self._workers]

    def power_off(self, names):
        """These hosts' agents stop answering (their sockets go), their
        guests are lost; disks stay."""
        names = set(names)
        for _, conn, ours in self._workers:
            conn.send(("power_off", sorted(names & ours)))
        for _, conn, _ in self._workers:
            conn.recv()

    def domains(self):
        out = {}
        for _, conn, _ in self._workers:
            conn.send(("domains", None))
        for _, conn, _ in self._workers:
            out.update(conn.recv())
        return out

    def close(self):
        for proc, conn, _ in self._workers:
            try:
                conn.send(("close", None))
                conn.poll(30) and conn.recv()
            except (BrokenPipeError, EOFError, OSError):
                pass
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        self._workers = []
