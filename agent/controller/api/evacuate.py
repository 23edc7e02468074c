"""API: evacuation of an instance or of a whole failed host.

The refusals (a host neither fenced nor set down, a local disk without
``rebuild``) are the operations' prechecks
(agent.controller.ops.evacuate, agent.controller.ops.host_evacuate).
"""
from agent.common.errors import InvalidInput
from agent.controller.api.servers import operation
from agent.controller.ops import host_evacuate, steps

_evacuate = operation("evacuate", supersede=True)


def server_evacuate(svc, name, host=None, rebuild=False):
    return _evacuate(svc, name, host=host, rebuild=bool(rebuild))


def host_evacuate_start(svc, name, max_parallel=2, rebuild=False):
    task_id = svc.admission.submit_host("host-evacuate", name,
                                        max_parallel=max_parallel,
                                        rebuild=bool(rebuild))
    return {"task_id": task_id, "host": name}


def host_evacuate_report(svc, task_id):
    task = svc.store.task_get(task_id)
    if task["kind"] != host_evacuate.KIND:
        raise InvalidInput(f"task {task_id} is not a host evacuation")
    for step in svc.store.steps_get(task_id):
        if (step.get("data") or {}).get("report") is not None:
            return step["data"]["report"]
    return steps.host_report(svc.store, task)


METHODS = {
    "server.evacuate": server_evacuate,
    "host.evacuate": host_evacuate_start,
    "host.evacuate_report": host_evacuate_report,
}
