"""API: servers (instances), their actions and tasks."""
import time
import uuid as uuidlib

from agent.common import validate
from agent.common.errors import Conflict
from agent.controller import placement, states
from agent.controller.api.views import event_rows, server_detail, server_row

TASK_WAIT_POLL = 0.01       # a read of the local store


def _image_names(svc):
    return {i["uuid"]: i["name"] for i in svc.store.list_images()}


def _detail(svc, inst, task_id=None):
    inst = dict(inst, image_name=_image_names(svc).get(inst["image_uuid"]))
    out = server_detail(inst)
    if task_id is not None:
        out["task_id"] = task_id
    return out


def _submit(svc, inst, action, kind, **params):
    """Record the instance action, then start its task."""
    request_id = f"req-{uuidlib.uuid4()}"
    act = svc.store.start_action(inst["uuid"], action, request_id)
    return svc.engine.submit(kind, {"uuid": inst["uuid"],
                                    "action": action,
                                    "action_id": act["id"], **params},
                             instance_uuid=inst["uuid"])


def _check_metadata(metadata):
    for key, value in (metadata or {}).items():
        validate.metadata_key(key)
        validate.text(value, f"metadata value of {key!r}")


def server_create(svc, name, flavor, image, availability_zone=None,
                  host=None, storage="local", metadata=None, dry_run=False):
    _check_metadata(metadata)
    if host is not None:
        svc.store.get_host(host)
    if dry_run:
        svc.store.get_image(image)
        return placement.explain(svc.store, svc.store.get_flavor(flavor),
                                 force_host=host,
                                 availability_zone=availability_zone)
    inst = svc.store.create_instance(
        name, flavor, image, availability_zone=availability_zone,
        storage=storage, guest_metadata=metadata or {})
    task_id = _submit(svc, inst, "create", "boot", host=host)
    return _detail(svc, inst, task_id)


def server_list(svc):
    names = _image_names(svc)
    return [server_row(dict(i, image_name=names.get(i["image_uuid"])))
            for i in svc.store.list_instances()]


def server_show(svc, name):
    return _detail(svc, svc.store.get_instance(name))


def _not_busy(svc, inst):
    busy = svc.store.list_tasks(instance_uuid=inst["uuid"], unfinished=True)
    if busy:
        raise Conflict(f"instance {inst['name']} is busy ({busy[0]['kind']} "
                       "in progress); try again when it ends")


def _operation(op, kind=None, **fixed):
    def run(svc, name, **params):
        inst = svc.store.get_instance(name)
        _not_busy(svc, inst)
        inst = svc.store.start_operation(inst["uuid"], op)
        task_id = _submit(svc, inst, op, kind or op, **fixed, **params)
        return _detail(svc, inst, task_id)
    return run


def server_delete(svc, name):
    """A resize waiting for confirmation is confirmed first (Nova)."""
    inst = svc.store.get_instance(name)
    return _operation("delete")(
        svc, name, confirm_resize=inst["vm_state"] == states.RESIZED)


def server_events(svc, name):
    inst = svc.store.get_instance(name, deleted=True)
    return event_rows(svc.store.list_actions(inst["uuid"]))


def server_console_log(svc, name, lines=50):
    inst = svc.store.get_instance(name)
    if not inst["host"]:
        raise Conflict(f"instance {inst['name']} is on no host")
    return svc.hosts.call(inst["host"], "instance.console_log",
                          uuid=inst["uuid"], storage=inst["storage"],
                          lines=lines)["log"]


def task_show(svc, id):
    task = svc.store.task_get(id)
    return {k: task.get(k) for k in ("id", "kind", "state", "error",
                                     "progress", "instance_uuid")}


def task_wait(svc, id, progress=None, timeout=2.0):
    """The task once it has ended or its progress is no longer
    ``progress``, or after ``timeout`` seconds (at most 10): the CLI's
    --wait learns of both at once instead of sleeping between polls."""
    deadline = time.monotonic() + min(float(timeout), 10.0)
    while True:
        task = task_show(svc, id)
        if task["state"] in ("done", "failed") or \
                task["progress"] != progress or time.monotonic() >= deadline:
            return task
        time.sleep(TASK_WAIT_POLL)


METHODS = {
    "server.create": server_create,
    "server.list": server_list,
    "server.show": server_show,
    "server.delete": server_delete,
    "server.stop": _operation("stop"),
    "server.start": _operation("start"),
    "server.reboot": _operation("reboot"),
    "server.events": server_events,
    "server.console_log": server_console_log,
    "task.show": task_show,
    "task.wait": task_wait,
}
