"""Evacuate a failed host: every instance on it is evacuated elsewhere
(agent.controller.ops.evacuate, each its own task).

0. (precheck): refused unless the host is fenced or set down
   (fencing.may_evacuate); --max-parallel >= 1
1. evacuate:   each instance through admission ("evacuate", superseding
               what was in flight on it), ``max_parallel`` at a time,
               showing progress; ends with the report: evacuated (and
               where), failed (with the reason), left behind (why: a
               local disk without --rebuild, a state that cannot be
               evacuated, a refusal)

The host is not disabled: it is out of service until its return is
reconciled (agent.controller.return_host), and an operator's disable is
kept then.  Resumed forward after a controller restart: evacuations in
flight are waited for (the report then lists only this run's).
"""
import time

from agent.common.errors import Conflict, DroverError, InvalidInput
from agent.controller import fencing
from agent.controller.ops import evacuate
from agent.controller.tasks.workflow import Step, Workflow

KIND = "host_evacuate"
POLL_S = 0.5


def check_host(host):
    ok, why = fencing.may_evacuate(host)
    if not ok:
        raise Conflict(why)


def precheck(services, host, params):
    check_host(host)
    limit = params.get("max_parallel", 2)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise InvalidInput(f"--max-parallel must be >= 1, not {limit!r}")
    return dict(params, max_parallel=limit,
                rebuild=bool(params.get("rebuild")))


def triage(inst, rebuild):
    """None if ``inst`` is to be evacuated, else why it is left behind."""
    if inst["vm_state"] not in evacuate.EVACUABLE:
        return f"cannot be evacuated in vm_state {inst['vm_state']}"
    if inst["storage"] == "local" and not rebuild:
        return ("its disk was on the host's local storage: that data is "
                "lost; evacuate with --rebuild to rebuild it from its image")
    return None


def _row(inst, result, dest=None, reason=None):
    return {"Server": inst["name"], "Result": result, "Destination": dest,
            "Reason": reason}


def _evacuation_task(store, inst):
    for task in store.list_tasks(instance_uuid=inst["uuid"],
                                 unfinished=True):
        if task["kind"] == evacuate.KIND:
            return task["id"]
    return None


def evacuate_all(ctx):
    svc, host = ctx.services, ctx.params["host"]
    limit = max(1, int(ctx.params.get("max_parallel") or 1))
    rebuild = ctx.params.get("rebuild", False)
    rows, queue = [], []
    for inst in svc.store.list_instances(host=host):
        why = triage(inst, rebuild)
        if why is None:
            queue.append(inst)
        else:
            rows.append(_row(inst, "left behind", reason=why))
    total, running = len(queue), {}
    while queue or running:
        while queue and len(running) < limit:
            inst = queue.pop(0)
            task_id = _evacuation_task(svc.store, inst)
            if task_id is None:
                try:
                    _, task_id = svc.admission.submit(
                        "evacuate", inst["uuid"], supersede=True,
                        rebuild=rebuild)
                except DroverError as err:
                    rows.append(_row(inst, "left behind", reason=str(err)))
                    continue
            running[inst["uuid"]] = (inst, task_id)
        for uuid, (inst, task_id) in list(running.items()):
            task = svc.store.task_get(task_id)
            if task["state"] == "done":
                rows.append(_row(inst, "evacuated",
                                 svc.store.get_instance(uuid)["host"]))
            elif task["state"] in ("failed", "superseded"):
                rows.append(_row(inst, "failed", reason=task["error"]))
            else:
                continue
            del running[uuid]
        done = sum(r["Result"] == "evacuated" for r in rows)
        failed = sum(r["Result"] == "failed" for r in rows)
        ctx.progress(f"{done}/{total} evacuated, {failed} failed, "
                     f"{len(running)} evacuating, {len(queue)} waiting")
        if queue or running:
            time.sleep(POLL_S)
    return {"report": rows}


def partial_report(store, task):
    """The report of a host evacuation still running."""
    return [_row(i, "on host") for i in
            store.list_instances(host=task["params"]["host"])]


def workflow(params):
    return Workflow(KIND, [Step("evacuate", evacuate_all)],
                    resume="forward")
