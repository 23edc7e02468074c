"""drover-agent: one per hypervisor host.

``drover-agent [serve]`` runs the daemon: the RPC server on [agent]
socket_path with the host primitives, libvirt lifecycle events pushed to
subscribers, systemd readiness and watchdog.  ``drover-agent relay`` is what
the controller runs over SSH to reach it; ``drover-agent receive-disk`` is
the receiving end of a host-to-host disk copy.
"""
import argparse
import logging
import os
import signal
import sys
import threading

from agent import conf
from agent.common import daemon, systemd
from agent.common.errors import DroverError
from agent.common.rpc import methods
from agent.common.rpc.server import RpcServer
from agent.conf import CONF
from agent.host import facts, image_cache, live, moves, peers, storage
from agent.host.lease import Lease
from agent.host.self_fence import SelfFence
from agent.host.snapshots import Snapshots
from agent.host.watchdog_device import WatchdogDevice
from agent.host.instances import Instances
from agent.hypervisor import domains
from agent.hypervisor.connection import Connection

LOG = logging.getLogger("drover-agent")


def lease_state_path():
    """Where the lease state survives an agent restart: beside the
    instance directories."""
    return os.path.join(os.path.dirname(
        CONF.agent.instances_path.rstrip("/")), "lease.json")


def build_guard(conn, server):
    """The self-fence guard (agent.host.self_fence) of this host."""
    probe_timeout = min(1.0, CONF.ha.renew_interval / 2)
    return SelfFence(
        Lease(state_path=lease_state_path()),
        peers.Peers(lambda address: peers.tcp_probe(
            address, CONF.ssh.port, probe_timeout)),
        lambda uuid: domains.destroy(conn, uuid),
        peer_timeout=CONF.ha.peer_timeout,
        interval=CONF.ha.renew_interval, publish=server.publish)


def build_server(conn):
    """The RPC server with every method of agent.common.rpc.methods.AGENT
    (MethodMismatch if one is missing or differs from the table), and
    the self-fence guard."""
    server = RpcServer(CONF.agent.socket_path, methods=methods.AGENT)
    guard = build_guard(conn, server)
    server.register("host.facts", lambda: facts.host_facts(conn))
    server.register("host.lease_renew", guard.lease_renew)
    server.register("host.peer_view", guard.peer_view)
    server.register("host.lease_clear", guard.lease_clear)
    server.register_group("image", image_cache)
    server.register_group("storage", storage)
    Instances(conn, guard=guard.check_start).register(server)
    Snapshots(conn).register(server)
    moves.register(server, conn)
    moving = live.register(server, conn, guard=guard.check_start)
    server.register("host.inventory", lambda: facts.inventory(
        conn, leaving=moving.jobs.leaving()))
    server.check_complete()
    server.guard = guard

    def on_lifecycle(uuid, event, detail):
        try:
            state = domains.info(conn, uuid).state
        except DroverError:
            state = "nostate"
        server.publish("domain.lifecycle", {"uuid": uuid, "event": event,
                                            "state": state})
    conn.register_lifecycle_callback(on_lifecycle)
    return server


def serve():
    conn = Connection(events=True)
    conn.get()      # fail early, clearly, if libvirtd is not there
    # Fencing on return: no drover guest starts here by itself.
    for uuid in domains.autostart_off(conn):
        LOG.warning("autostart was on for domain %s: turned off", uuid)
    server = build_server(conn)
    server.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.guard.start(stop)
    systemd.notify("READY=1")
    # A hung agent stops pinging: systemd kills and restarts it; a watchdog
    # device it feeds resets the host.
    device = WatchdogDevice(CONF.ha.watchdog_device)

    def healthy():
        ok = conn.get() is not None and server.guard.healthy()
        if ok:
            device.feed()
        return ok
    systemd.start_watchdog(healthy, stop,
                           interval=1.0 if device.fd is not None else None)
    LOG.info("serving on %s (libvirt %s)", CONF.agent.socket_path, conn.uri)
    stop.wait()
    systemd.notify("STOPPING=1")
    device.close()
    server.stop()
    conn.close()
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="drover-agent",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", action="append", default=[])
    parser.add_argument("command", nargs="?", default="serve",
                        choices=["serve", "relay", "receive-disk"])
    args, rest = parser.parse_known_args(argv)
    files = [f"--config-file={p}" for p in args.config_file]
    if args.command == "relay":
        from agent.host import relay
        return relay.main(rest + [a for p in args.config_file
                                  for a in ("--config-file", p)])
    def load():
        return conf.load(files)
    if args.command == "receive-disk":
        return daemon.run(load, lambda: _receive_disk(rest),
                          "drover-agent receive-disk")
    return daemon.run(load, serve, "drover-agent")


def _receive_disk(argv):
    """The receiving end of a host-to-host disk copy, writing only under
    this host's instance paths."""
    from agent.transport import diskcopy
    roots = [p for p in (CONF.agent.instances_path,
                         CONF.agent.shared_instances_path) if p]
    return diskcopy.receive_main(argv, roots=roots)


if __name__ == "__main__":
    sys.exit(main())
