"""The controller's local API: method name -> function(services, **params).

The CLI reaches it on [controller] socket_path (JSON lines, the same
protocol as the agents').  A standby controller (agent.controller.leader)
answers every method but ``controller.leader`` with NotLeader, one line
saying where the leader is."""
from agent.common.errors import NotLeader
from agent.controller.api import (evacuate, fleet, groups, ha, hosts,
                                  inventory, live, migrations, servers)


def leader(services):
    """Who leads: {role: leader|standby, name, term, leader: {term,
    holder, address, since}} (SQLite: always this controller)."""
    lease = services.leader
    if lease is None:
        return {"role": "leader", "name": None, "term": None,
                "leader": None}
    return {"role": "leader" if lease.leading else "standby",
            "name": lease.name, "term": lease.term,
            "leader": lease.current()}


def register(server, services):
    server.register("controller.leader", _bind(leader, services,
                                               gated=False))
    for table in (hosts.METHODS, inventory.METHODS, servers.METHODS,
                  migrations.METHODS, live.METHODS, fleet.METHODS,
                  evacuate.METHODS, groups.METHODS, ha.METHODS):
        for name, fn in table.items():
            server.register(name, _bind(fn, services))


def not_leader(services):
    """NotLeader naming where the leader is."""
    lease = services.leader
    try:
        cur = lease.current()
    except Exception as err:            # the database is unreachable
        return NotLeader(f"controller {lease.name} is a standby and cannot "
                         f"read who leads: {err}")
    if not cur["holder"]:
        return NotLeader(f"controller {lease.name} is a standby; no leader "
                         "yet")
    return NotLeader(f"controller {lease.name} is a standby; the leader is "
                     f"{cur['holder']} (API socket {cur['address']}, term "
                     f"{cur['term']})")


def _bind(fn, services, gated=True):
    def method(**params):
        if gated and services.leader is not None and \
                not services.leader.leading:
            raise not_leader(services)
        return fn(services, **params)
    method.__name__ = getattr(fn, "__name__", "method")
    return method
