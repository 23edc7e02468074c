"""API: live migration, its abort and force-complete, host drain.

``start`` refuses at once (exit 2) what the pre-checks can tell before
the task runs: an instance that is not running or paused, a destination
that is the source, down, disabled or incompatible, block migration on
shared storage and shared-storage migration without shared storage (the
probe between the two hosts when the destination is given).
"""
from agent.common.errors import Conflict, InvalidInput
from agent.controller import live_checks
from agent.controller.api.servers import _not_busy, _operation
from agent.controller.ops import common, drain, live_migrate
from agent.controller.ops.live_migrate import KIND


def start(svc, name, host=None, block=None):
    inst = svc.store.get_instance(name)
    _not_busy(svc, inst)
    live_checks.check_instance(inst)
    shared = None
    if host is not None:
        source = svc.store.get_host(inst["host"])
        live_checks.check_hosts(source, svc.store.get_host(host))
        shared = common.shared_storage(svc.hosts, source["name"], host,
                                       inst["storage"])
        live_checks.choose_block(block, shared)
    elif block and inst["storage"] == "shared":
        live_checks.choose_block(block, True)
    return _operation("live-migrate", KIND)(svc, name, host=host,
                                            block=block, shared=shared)


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
    drain.check_host(svc.store.get_host(name))
    if not isinstance(max_parallel, int) or max_parallel < 1:
        raise InvalidInput(f"--max-parallel must be >= 1, not "
                           f"{max_parallel!r}")
    task_id = svc.engine.submit(drain.KIND, {"host": name,
                                             "max_parallel": max_parallel})
    return {"task_id": task_id, "host": name}


def host_drain_report(svc, task_id):
    task = svc.store.task_get(task_id)
    if task["kind"] != drain.KIND:
        raise InvalidInput(f"task {task_id} is not a host drain")
    for step in svc.store.steps_get(task_id):
        if (step.get("data") or {}).get("report") is not None:
            return step["data"]["report"]
    return drain.partial_report(svc.store, task)


METHODS = {
    "migration.abort": _job_call("migration.abort"),
    "migration.force_complete": _job_call("migration.force_complete"),
    "host.drain": host_drain,
    "host.drain_report": host_drain_report,
}
