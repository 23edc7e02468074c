"""drover-controller: state, scheduler and operations of the fleet.

Starts in this order: the database (migrated to the current schema), the
API socket for the CLI, then, once this controller is the leader, the host
manager (agent clients, polling), the lease book (self-fencing leases,
[ha] enabled) and the task engine (resuming what a previous leader left
in flight).

On SQLite a controller leads at once (one controller only).  On PostgreSQL
several controllers may share the database: each waits, as a standby, for
the leader lease (agent.controller.leader) and takes over within about
[database] leader_poll_interval of the leader's death; a standby's API
answers with where the leader is.  A leader that loses its lease stops at
once (its writes are refused already) and exits, to be started again by
its supervisor as a standby.

``drover-controller db upgrade`` migrates the database and exits (as
``nova-manage db sync``).
"""
import argparse
import dataclasses
import logging
import os
import signal
import sys
import threading
import time

from agent import conf
from agent.common import daemon, systemd
from agent.common.rpc.server import RpcServer
from agent.conf import CONF
from agent.controller import (api, auto_rebalance, ha_policy, metrics,
                              periodic)
from agent.controller.recovery import Recovery
from agent.controller.admission import Admission
from agent.controller.db import Store, upgrade
from agent.controller.db.schema import current
from agent.controller.db.session import is_postgresql, normalize_url
from agent.controller.hosts import HostManager
from agent.controller.leader import LeaderLease
from agent.controller.load import LoadHistory
from agent.controller.leases import LeaseBook
from agent.controller.ops import WORKFLOWS
from agent.controller.tasks.actionlog import ActionTaskLog
from agent.controller.tasks.engine import TaskEngine

LOG = logging.getLogger("drover-controller")
DEPOSED_EXIT = 3


@dataclasses.dataclass
class Services:
    """What operations and API methods use."""
    store: Store
    hosts: HostManager
    engine: TaskEngine = None
    admission: Admission = None
    # The measured load of guests and hosts (memory only, 10 minutes).
    load: LoadHistory = None
    # The leader lease (PostgreSQL), or None: SQLite, always the leader.
    leader: LeaderLease = None
    leases: LeaseBook = None        # self-fencing ([ha] enabled)
    # Automatic rebalancing's rounds ([rebalance] enabled, while leading).
    rebalancer: object = None


def build():
    url = CONF.database.connection
    upgrade(url)
    store = Store(url)
    load = LoadHistory()
    svc = Services(store=store, hosts=HostManager(store, load=load),
                   load=load)
    svc.engine = TaskEngine(ActionTaskLog(store), WORKFLOWS, svc)
    svc.admission = Admission(svc)
    svc.hosts.recovery = Recovery(svc)
    if is_postgresql(url):
        svc.leader = LeaderLease(url, name=CONF.database.name,
                                 address=CONF.controller.socket_path)
    if CONF.ha.enabled:
        svc.leases = LeaseBook(
            store, svc.hosts.call, is_ha=ha_policy.is_ha,
            submit=lambda op, uuid: svc.admission.submit(op, uuid))
    return svc


def _lead(svc):
    """Become the leader's services: fence the store's writes with the
    lease, poll the hosts, resume what was in flight."""
    if svc.leader is not None:
        svc.store.db.term = svc.leader.term
        svc.store.db.fence = svc.leader.check
    svc.hosts.recovery.begin()
    svc.hosts.start()
    if svc.leases is not None:
        svc.leases.start()
    resumed = svc.engine.resume_all()
    periodic.start(svc)
    svc.rebalancer = auto_rebalance.start(svc)
    if resumed:
        LOG.info("resumed %d task(s) left in flight: %s", len(resumed),
                 resumed)


def _wait_for_lease(svc, stop):
    """Standby until the lease is ours (True) or we are stopped."""
    poll = CONF.database.leader_poll_interval
    said = None
    while not stop.is_set():
        try:
            if svc.leader.try_acquire():
                return True
            holder = svc.leader.current()
            if holder != said:
                LOG.info("standby: the leader is %s (term %s)",
                         holder["holder"], holder["term"])
                said = holder
        except Exception as err:      # the database may be restarting
            LOG.warning("standby: cannot reach the database: %s", err)
        stop.wait(poll)
    return False


def _watch_lease(svc, stop, deposed):
    """While leading: if the lock session goes, stop everything."""
    poll = CONF.database.leader_poll_interval
    while not stop.wait(poll):
        if not svc.leader.holds():
            LOG.error("deposed: lost the leader lease of term %s; "
                      "stopping (writes are refused) and exiting",
                      svc.leader.term)
            deposed.set()
            stop.set()
            return


def serve():
    svc = build()
    metrics_server = metrics.start(svc.store, CONF.controller.metrics_listen)
    server = RpcServer(CONF.controller.socket_path)
    api.register(server, svc)
    server.start()
    stop = threading.Event()
    deposed = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    systemd.notify("READY=1")
    systemd.start_watchdog(lambda: True, stop)
    LOG.info("serving on %s", CONF.controller.socket_path)
    leading = True
    if svc.leader is not None:
        LOG.info("standby: %s waits for the leader lease", svc.leader.name)
        leading = _wait_for_lease(svc, stop)
        if leading:
            threading.Thread(target=_watch_lease, name="lease",
                             args=(svc, stop, deposed), daemon=True).start()
    if leading:
        started = time.monotonic()
        _lead(svc)
        LOG.info("leading (took %.2f s to start)",
                 time.monotonic() - started)
    stop.wait()
    if deposed.is_set():
        # Threads of the engine may be inside a step: they must not
        # continue; the new leader resumes their tasks.
        systemd.notify("STOPPING=1")
        logging.shutdown()
        os._exit(DEPOSED_EXIT)
    systemd.notify("STOPPING=1")
    server.stop()
    if metrics_server is not None:
        metrics_server.shutdown()
    if svc.leases is not None:
        svc.leases.stop()
    svc.hosts.close()
    svc.engine.shutdown(wait=False)
    if svc.leader is not None:
        svc.leader.close()
    return 0


def db_upgrade():
    url = CONF.database.connection
    upgrade(url)
    print(f"database at revision {current(url)}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="drover-controller",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", action="append", default=[])
    sub = parser.add_subparsers(dest="command")
    db = sub.add_parser("db", help="the state store's schema")
    db.add_argument("action", choices=["upgrade"],
                    help="upgrade: migrate the database to the current "
                         "schema (creating it), then exit")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    work = db_upgrade if args.command == "db" else serve

    def load():
        loaded = conf.load([f"--config-file={p}" for p in args.config_file])
        normalize_url(loaded.database.connection)   # InvalidInput: exit 2
        return loaded
    return daemon.run(load, work, "drover-controller")


if __name__ == "__main__":
    sys.exit(main())
