"""API: live migration's abort and force-complete, host drain.

Starting a live migration is ``server.migrate --live-migration``
(agent.controller.api.migrations); its up-front refusals are the
operation's precheck (agent.controller.ops.live_migrate.precheck).
"""
from agent.common.errors import Conflict, DroverError, InvalidInput, one_line
from agent.controller import move_prediction, states
from agent.controller.ops import drain, live_migrate, steps


def _current(svc, name):
    inst = svc.store.get_instance(name)
    mig = live_migrate.in_progress(svc.store, inst["uuid"])
    if mig is None:
        raise Conflict(f"instance {inst['name']} has no live migration in "
                       "progress")
    return inst, mig


def _job_call(method):
    def run(svc, name):
        inst, mig = _current(svc, name)
        try:
            status = svc.hosts.call(mig["source_host"], method,
                                    uuid=inst["uuid"])
        except InvalidInput as err:
            raise Conflict(f"live migration of {inst['name']} "
                           f"({mig['status']}): {err}") from None
        if status.get("migration_uuid") not in (None, mig["uuid"]):
            raise Conflict(f"live migration of {inst['name']} has not "
                           "started yet; try again")
        return dict(svc.store.get_migration(mig["uuid"]),
                    job_status=status["status"])
    return run


def host_drain(svc, name, max_parallel=2, dry_run=False):
    if dry_run:
        return drain_plan(svc, name)
    task_id = svc.admission.submit_host("drain", name,
                                        max_parallel=max_parallel)
    return {"task_id": task_id, "host": name}


def drain_plan(svc, name):
    """What ``host drain`` would move now, each move with its
    destination (the scheduler's choice, as if each went alone) and its
    prediction.  Changes nothing."""
    drain.check_host(svc.store.get_host(name))
    rows = []
    for inst in svc.store.list_instances(host=name):
        if inst["vm_state"] not in (states.ACTIVE, states.PAUSED) or \
                inst["power_state"] not in drain.MOVABLE:
            rows.append({"Server": inst["name"], "Source": name,
                         "Destination": None, "Verdict": None,
                         "Reason": "left behind: not running"})
            continue
        dest = move_prediction.destination(svc.store, inst)
        if dest is None:
            rows.append({"Server": inst["name"], "Source": name,
                         "Destination": None, "Verdict": None,
                         "Reason": "no valid host"})
            continue
        try:
            rows.append(move_prediction.row(
                inst, move_prediction.predict_move(svc, inst, dest)))
        except DroverError as err:
            rows.append({"Server": inst["name"], "Source": name,
                         "Destination": dest, "Verdict": None,
                         "Reason": f"no prediction: {one_line(err)}"})
    return rows


def host_drain_report(svc, task_id):
    task = svc.store.task_get(task_id)
    if task["kind"] != drain.KIND:
        raise InvalidInput(f"task {task_id} is not a host drain")
    for step in svc.store.steps_get(task_id):
        if (step.get("data") or {}).get("report") is not None:
            return step["data"]["report"]
    return steps.host_report(svc.store, task)


METHODS = {
    "migration.abort": _job_call("migration.abort"),
    "migration.force_complete": _job_call("migration.force_complete"),
    "host.drain": host_drain,
    "host.drain_report": host_drain_report,
}
