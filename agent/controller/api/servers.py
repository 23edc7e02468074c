"""API: servers (instances), their actions and tasks."""
import time

from agent.common import validate
from agent.common.errors import Conflict, InvalidInput
from agent.controller import placement
from agent.conf import CONF
from agent.controller import states
from agent.controller.api.views import (event_rows, rescue_note,
                                        server_detail, server_row)
from agent.controller.ops import boot, rescue

TASK_WAIT_POLL = 0.5        # a read of the store when not woken


def _image_names(svc):
    return {i["uuid"]: i["name"] for i in svc.store.list_images()}


def _detail(svc, inst, task_id=None):
    names = _image_names(svc)
    inst = dict(inst, image_name=names.get(inst["image_uuid"]))
    out = server_detail(inst)
    if inst["vm_state"] == states.RESCUED:
        task = rescue.last_rescue(svc.store, inst["uuid"])
        image = task["params"]["image"] if task else None
        out["rescue"] = rescue_note(inst, names.get(image, image),
                                    task["updated_at"] if task else None,
                                    CONF.compute.rescue_timeout)
    if task_id is not None:
        out["task_id"] = task_id
    return out


def _check_metadata(metadata):
    for key, value in (metadata or {}).items():
        validate.metadata_key(key)
        validate.text(value, f"metadata value of {key!r}")


def _group_hint(hints):
    """The server group a ``--hint group=NAME`` names, or None; other
    hints are refused (none else is known)."""
    hints = dict(hints or {})
    group = hints.pop("group", None)
    if hints:
        raise InvalidInput(f"unknown scheduler hint {sorted(hints)[0]!r} "
                           "(hints: group)")
    return group


def server_create(svc, name, flavor, image, availability_zone=None,
                  host=None, storage="local", metadata=None, dry_run=False,
                  hints=None):
    _check_metadata(metadata)
    group = _group_hint(hints)
    if dry_run:
        boot.check_request(svc.store, flavor=flavor, image=image,
                           availability_zone=availability_zone, host=host,
                           group=group)
        return placement.explain(
            svc.store, svc.store.get_flavor(flavor), force_host=host,
            availability_zone=availability_zone,
            group=None if group is None else svc.store.group_placement(group))
    inst, task_id = svc.admission.create(
        name, flavor, image, availability_zone=availability_zone, host=host,
        storage=storage, metadata=metadata, group=group)
    return _detail(svc, inst, task_id)


def server_list(svc):
    names = _image_names(svc)
    return [server_row(dict(i, image_name=names.get(i["image_uuid"])))
            for i in svc.store.list_instances()]


def server_show(svc, name):
    return _detail(svc, svc.store.get_instance(name))


def operation(op, **fixed):
    """The API method that starts ``op`` (a row of the operations table)
    on the instance it names."""
    def run(svc, name, **params):
        inst, task_id = svc.admission.submit(op, name, **fixed, **params)
        return _detail(svc, inst, task_id)
    run.__name__ = op.replace("-", "_")
    return run


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
                                     "progress", "instance_uuid",
                                     "cancel_requested", "superseded_by",
                                     "term")}


def task_cancel(svc, id):
    """Ask a task to stop and undo what it did (refused past its point of
    no return)."""
    svc.engine.cancel(id)
    return task_show(svc, id)


def task_wait(svc, id, progress=None, timeout=2.0):
    """The task once it has ended or its progress is no longer
    ``progress``, or after ``timeout`` seconds (at most 10): the CLI's
    --wait learns of both at once instead of sleeping between polls.
    Woken by the store when this controller changes a task; read again
    every TASK_WAIT_POLL seconds all the same (a change written by
    another controller)."""
    deadline = time.monotonic() + min(float(timeout), 10.0)
    while True:
        seen = svc.store.task_generation()
        task = task_show(svc, id)
        left = deadline - time.monotonic()
        if task["state"] in ("done", "failed", "superseded") or \
                task["progress"] != progress or left <= 0:
            return task
        svc.store.wait_task_change(seen, min(left, TASK_WAIT_POLL))


METHODS = {
    "server.create": server_create,
    "server.list": server_list,
    "server.show": server_show,
    "server.delete": operation("delete"),
    "server.stop": operation("stop"),
    "server.start": operation("start"),
    "server.reboot": operation("reboot"),
    "server.rescue": operation("rescue"),
    "server.unrescue": operation("unrescue"),
    "server.image_create": operation("image-create"),
    "server.shelve": operation("shelve"),
    "server.unshelve": operation("unshelve"),
    "server.events": server_events,
    "server.console_log": server_console_log,
    "task.show": task_show,
    "task.wait": task_wait,
    "task.cancel": task_cancel,
}
