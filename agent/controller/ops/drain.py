"""Drain a host: every running instance live-migrates away.

0. (check_host, also before the task starts): a host that is not up is
   refused: live migration needs its agent and libvirt
1. disable: the host takes no new instances (stays disabled afterwards:
            the operator enables it again)
2. migrate: live-migrate its running and paused instances through the
            scheduler, ``max_parallel`` at a time, showing progress; ends
            with the report: moved, failed (with reasons), left behind
            (not running, or busy with another task); a host that goes
            down meanwhile starts no more, the rest are left behind

Resumed forward after a controller restart: live migrations still in
flight are waited for, the rest started.
"""
import time

from agent.common.errors import Conflict, DroverError, InvalidInput
from agent.controller import states
from agent.controller.ops import live_migrate
from agent.controller.tasks.workflow import Step, Workflow

KIND = "drain"
POLL_S = 0.5
MOVABLE = (states.RUNNING, states.POWER_PAUSED)


def check_host(host):
    """Refuse (Conflict) to drain ``host`` (a store record) unless it is
    up: the guests of a dead host cannot be migrated away."""
    if host["state"] != "up":
        raise Conflict(f"host {host['name']} is down: its instances cannot "
                       "be migrated away; they need evacuation once the "
                       f"host is fenced or set down (drover host evacuate "
                       f"{host['name']})")


def precheck(services, host, params):
    check_host(host)
    limit = params.get("max_parallel", 2)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise InvalidInput(f"--max-parallel must be >= 1, not {limit!r}")
    return dict(params, max_parallel=limit)


def disable(ctx):
    check_host(ctx.services.store.get_host(ctx.params["host"]))
    ctx.services.store.disable_host(ctx.params["host"], "drained")
    ctx.progress(f"{ctx.params['host']} disabled")


def _row(inst, result, dest=None, reason=None):
    return {"Server": inst["name"], "Result": result, "Destination": dest,
            "Reason": reason}


def _live_task(store, inst):
    """The unfinished live-migration task of ``inst``, if it has one."""
    for task in store.list_tasks(instance_uuid=inst["uuid"],
                                 unfinished=True):
        if task["kind"] == live_migrate.KIND:
            return task["id"]
    return None


def migrate_all(ctx):
    svc, host = ctx.services, ctx.params["host"]
    limit = max(1, int(ctx.params.get("max_parallel") or 1))
    rows, queue = [], []
    for inst in svc.store.list_instances(host=host):
        if inst["vm_state"] in (states.ACTIVE, states.PAUSED) and \
                inst["power_state"] in MOVABLE:
            queue.append(inst)
        else:
            rows.append(_row(inst, "left behind", reason="not running "
                             f"({states.status(inst['vm_state'])}); "
                             "cold-migrate it"))
    total, running = len(queue), {}
    while queue or running:
        try:
            check_host(svc.store.get_host(host))
        except Conflict as err:
            rows += [_row(i, "left behind", reason=str(err)) for i in queue]
            queue = []
        while queue and len(running) < limit:
            inst = queue.pop(0)
            task_id = _live_task(svc.store, inst)
            if task_id is None:
                try:
                    _, task_id = svc.admission.submit("live-migrate",
                                                      inst["uuid"])
                except DroverError as err:
                    rows.append(_row(inst, "left behind", reason=str(err)))
                    continue
            running[inst["uuid"]] = (inst, task_id)
        for uuid, (inst, task_id) in list(running.items()):
            task = svc.store.task_get(task_id)
            if task["state"] == "done":
                dest = svc.store.get_instance(uuid)["host"]
                rows.append(_row(inst, "moved", dest))
            elif task["state"] == "failed":
                rows.append(_row(inst, "failed", reason=task["error"]))
            else:
                continue
            del running[uuid]
        moved = sum(r["Result"] == "moved" for r in rows)
        failed = sum(r["Result"] == "failed" for r in rows)
        ctx.progress(f"{moved}/{total} moved, {failed} failed, "
                     f"{len(running)} migrating, {len(queue)} waiting")
        if queue or running:
            time.sleep(POLL_S)
    return {"report": rows}


def partial_report(store, task):
    """The report of a drain still running: its host's instances."""
    return [_row(i, "on host") for i in
            store.list_instances(host=task["params"]["host"])]


def workflow(params):
    return Workflow(KIND, [
        Step("disable", disable),
        Step("migrate", migrate_all),
    ], resume="forward")
