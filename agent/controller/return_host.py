"""A fenced or down host that answers again is reconciled before it
serves: fencing on return.

``plan`` (pure) decides from the store's evacuation records of the host,
the store's instances, and the host's own inventory (its domains); ``run``
does it through the agent, then the clean-ups the host owes
(agent.controller.host_cleanups: instances deleted while it was down),
releases stale claims on it, marks its evacuation records "completed"
and only then puts the host back (``up``; an operator's disable is
kept).  The poller (agent.controller.hosts) calls ``run`` instead of
counting a returning host as up.

Argued from the two promises:

- **Nothing starts there on its own.**  drover defines domains without
  autostart and its agent turns autostart off on every drover domain when
  it starts (agent.host.daemon); it never starts a guest unless the
  controller asks, and the controller asks nothing of a host that is not
  up but this reconcile, which only destroys, undefines and removes.
- **Only a guest that provably lives elsewhere is destroyed.**  Its
  evacuation record is "done" (the evacuation passed its point of no
  return and switched the instance) and the store says the instance's
  host is another one.  An evacuation that failed (or never started)
  leaves the domain alone: the instance is still this host's (Nova's
  bug 1713783 destroyed those).  An evacuation still running keeps the
  host out of service until it ends (``WAIT``): which copy wins is not
  decided yet.
- **Nothing on shared storage is ever removed here.**  An evacuated
  guest on shared storage runs elsewhere from that very directory; only
  the local directory of a local-storage guest goes (rebuilt elsewhere
  with ``--rebuild``, which the operator chose knowing its data was lost;
  the refusal without it said so).  A deleted instance's files are
  host_cleanups' business, under its own rules.
- Every action can run twice (destroy, undefine, cleanup of what is gone
  do nothing), and a record is marked completed only after all of them
  succeeded: a poller or controller that dies half way does it again.
"""
import logging

from agent.common.errors import DroverError, NotFound
from agent.controller import host_cleanups, states
from agent.transport.errors import HostUnreachable

LOG = logging.getLogger(__name__)

TYPE = "evacuation"
IN_FLIGHT = (states.MIG_ACCEPTED, states.MIG_PRE_MIGRATING,
             states.MIG_RUNNING)


def plan(host, evacuations, instances, domains):
    """What the returning ``host`` must do.

    ``evacuations``: its evacuation records (source_host == host, newest
    first); ``instances``: {uuid: store record or None}; ``domains``: the
    uuids libvirt has there.  Returns (actions, waits): actions are dicts
    {"uuid", "migration", "destroy": bool, "remove_local": bool}, one per
    evacuation to complete; waits name the evacuations still running."""
    actions, waits, seen = [], [], set()
    for mig in evacuations:
        uuid = mig["instance_uuid"]
        if mig["source_host"] != host or uuid in seen:
            continue
        seen.add(uuid)
        if mig["status"] in IN_FLIGHT:
            waits.append(f"evacuation of instance {uuid} is "
                         f"{mig['status']}")
            continue
        if mig["status"] != states.MIG_DONE:
            continue        # failed, error, completed: nothing to do here
        inst = instances.get(uuid)
        gone = inst is None or inst["vm_state"] == states.DELETED
        if not gone and inst["host"] == host:
            continue        # it lives here after all: never touched
        storage = (inst or {}).get("storage") or \
            (mig.get("progress") or {}).get("storage")
        actions.append({"uuid": uuid, "migration": mig["uuid"],
                        "destroy": uuid in domains,
                        "remove_local": storage == "local"})
    return actions, waits


def stale_claims(host, allocations, instances, migrations):
    """Allocations on ``host`` nothing needs any more: an instance's that
    neither lives there nor has a move in progress to or from it; a
    migration's that is over.  ``instances``: {uuid: record or None};
    ``migrations``: {uuid: record} of every migration."""
    busy = {m["instance_uuid"] for m in migrations.values()
            if states.migration_in_progress(m["status"])
            and host in (m["source_host"], m["dest_host"])}
    out = []
    for alloc in allocations:
        if alloc["host"] != host:
            continue
        consumer = alloc["consumer"]
        if consumer in migrations:
            if not states.migration_in_progress(
                    migrations[consumer]["status"]):
                out.append(alloc)
            continue
        inst = instances.get(alloc["instance_uuid"])
        if alloc["instance_uuid"] in busy:
            continue
        if inst is None or inst["vm_state"] == states.DELETED or \
                inst["host"] != host:
            out.append(alloc)
    return out


def _instance(store, uuid):
    try:
        return store.get_instance(uuid, deleted=True)
    except NotFound:
        return None


def _do(call, host, action):
    uuid = action["uuid"]
    if action["destroy"]:
        call(host, "instance.destroy", uuid=uuid)
        call(host, "instance.undefine", uuid=uuid)
    if action["remove_local"]:
        call(host, "instance.cleanup", uuid=uuid, storage="local")


def run(store, call, host, domains):
    """Reconcile ``host`` (its agent answers) through ``call(host,
    method, **params)``; ``domains``: uuids in its libvirt.  Returns what
    is still pending, one line each (empty: the host is back up).
    HostUnreachable is raised: the host is not back after all."""
    evacuations = [m for m in store.list_migrations(type=TYPE, host=host)
                   if m["source_host"] == host]
    instances = {m["instance_uuid"]: _instance(store, m["instance_uuid"])
                 for m in evacuations}
    actions, pending = plan(host, evacuations, instances, set(domains))
    for action in actions:
        try:
            _do(call, host, action)
        except HostUnreachable:
            raise
        except DroverError as err:
            LOG.warning("host %s: removing evacuated instance %s: %s", host,
                        action["uuid"], err)
            pending.append(f"instance {action['uuid']}: {err}")
            continue
        store.release(action["uuid"], host=host)
        store.update_migration(action["migration"],
                               status=states.MIG_COMPLETED)
        LOG.info("host %s: evacuated instance %s removed (%s)", host,
                 action["uuid"], "domain and local directory"
                 if action["remove_local"] else "domain; shared files kept")
    pending += host_cleanups.run(store, call, host)
    if pending:
        return pending
    _release_stale(store, host)
    if store.get_host(host).get("forced_down"):
        # Set down by the operator: cleaned, but it stays down until the
        # operator sets it up (FENCE's host set --up, allowed now that
        # its evacuations are completed).
        return []
    store.host_returned(host)     # up; a fence it had is over
    return []


def _release_stale(store, host):
    allocations = store.list_allocations(host=host)
    migrations = {m["uuid"]: m for m in store.list_migrations()}
    instances = {a["instance_uuid"]: _instance(store, a["instance_uuid"])
                 for a in allocations}
    for alloc in stale_claims(host, allocations, instances, migrations):
        LOG.info("host %s: stale claim of %s released", host,
                 alloc["consumer"])
        store.release(alloc["consumer"], host=host)
