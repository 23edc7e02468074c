"""API: live migration's abort and force-complete, host drain.

Starting a live migration is ``server.migrate --live-migration``
(agent.controller.api.migrations); its up-front refusals are the
operation's precheck (agent.controller.ops.live_migrate.precheck).
"""
from agent.common.errors import Conflict, InvalidInput
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


def host_drain(svc, name, max_parallel=2):
    task_id = svc.admission.submit_host("drain", name,
                                        max_parallel=max_parallel)
    return {"task_id": task_id, "host": name}


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
