"""drover-controller: state, scheduler and operations of the fleet.

Starts in this order: the database (migrated to the current schema), the
host manager (agent clients, polling), the lease book (self-fencing
leases, [ha] enabled), the task engine (resuming what a previous
controller left in flight), then the API socket for the CLI.
"""
import argparse
import dataclasses
import logging
import signal
import sys
import threading

from agent import conf
from agent.common import daemon, systemd
from agent.common.rpc.server import RpcServer
from agent.conf import CONF
from agent.controller import api, periodic
from agent.controller.admission import Admission
from agent.controller.db import Store, upgrade
from agent.controller.hosts import HostManager
from agent.controller.leases import LeaseBook
from agent.controller.ops import WORKFLOWS
from agent.controller.tasks.actionlog import ActionTaskLog
from agent.controller.tasks.engine import TaskEngine

LOG = logging.getLogger("drover-controller")


@dataclasses.dataclass
class Services:
    """What operations and API methods use."""
    store: Store
    hosts: HostManager
    engine: TaskEngine = None
    admission: Admission = None
    leases: LeaseBook = None        # self-fencing ([ha] enabled)


def build():
    upgrade(CONF.controller.database_url)
    store = Store(CONF.controller.database_url)
    svc = Services(store=store, hosts=HostManager(store))
    svc.engine = TaskEngine(ActionTaskLog(store), WORKFLOWS, svc)
    svc.admission = Admission(svc)
    if CONF.ha.enabled:
        svc.leases = LeaseBook(
            store, svc.hosts.call,
            submit=lambda op, uuid: svc.admission.submit(op, uuid))
    return svc


def serve():
    svc = build()
    svc.hosts.start()
    if svc.leases is not None:
        svc.leases.start()
    resumed = svc.engine.resume_all()
    periodic.start(svc)
    if resumed:
        LOG.info("resumed %d task(s) left in flight: %s", len(resumed),
                 resumed)
    server = RpcServer(CONF.controller.socket_path)
    api.register(server, svc)
    server.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    systemd.notify("READY=1")
    systemd.start_watchdog(lambda: True, stop)
    LOG.info("serving on %s", CONF.controller.socket_path)
    stop.wait()
    systemd.notify("STOPPING=1")
    server.stop()
    if svc.leases is not None:
        svc.leases.stop()
    svc.hosts.close()
    svc.engine.shutdown(wait=False)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="drover-controller",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", action="append", default=[])
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    return daemon.run(
        lambda: conf.load([f"--config-file={p}" for p in args.config_file]),
        serve, "drover-controller")


if __name__ == "__main__":
    sys.exit(main())
