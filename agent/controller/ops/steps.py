"""Steps and step helpers that several operations share.

A step that works on a host takes the host's *role* in the task, the key
under which an earlier step put the host's name in the context: "host"
(boot), "source" and "dest" (moves), so that boot, cold migration and
evacuation build their workflows from the same pieces.
"""
import logging
import time

from agent.common.errors import DroverError, HostGone, one_line
from agent.controller import images, states
from agent.controller.ops import common
from agent.transport.errors import HostUnreachable

LOG = logging.getLogger(__name__)
HOST_OPERATION_POLL_S = 0.5     # how often a host operation looks at its tasks


# -- records -------------------------------------------------------------

def record_migration(ctx, mtype, source, **fields):
    """The instance's migration record of type ``mtype`` that is still in
    progress (made by this task before a restart), or a new one."""
    store = ctx.services.store
    uuid = ctx.params["uuid"]
    for mig in store.list_migrations(instance_uuid=uuid, type=mtype,
                                     in_progress=True):
        return mig
    return store.create_migration(uuid, mtype, source, **fields)


def update_migration(ctx, mig_uuid, **values):
    """Update a migration record; ``progress`` keys are merged into what
    is there."""
    store = ctx.services.store
    if "progress" in values:
        merged = dict(store.get_migration(mig_uuid).get("progress") or {})
        merged.update(values["progress"])
        values["progress"] = merged
    return store.update_migration(mig_uuid, **values)


def add_event(ctx, event, details, result="Error"):
    """An event of the task's instance action (``server event list``)."""
    action_id = ctx.params.get("action_id")
    if action_id is None:
        return
    store = ctx.services.store
    ev = store.start_event(action_id, event)
    store.finish_event(ev["id"], result, details[:1000])


# -- hosts ---------------------------------------------------------------

def host_address(ctx, host):
    return ctx.services.store.get_host(host)["address"]


# Host states in which work on the host may be skipped and left for its
# return.  Removing files or a definition can wait for a host that is
# only unreachable; stopping a guest that may run cannot: unless the host
# is known to be off (fenced), skipping it could leave the guest running
# there while the undo starts it elsewhere.
GONE = frozenset({"down", "fenced"})
OFF = frozenset({"fenced"})


def require_host(ctx, host, leftover=None, gone=GONE):
    """HostGone if ``host`` is in one of the ``gone`` states: an undo
    calls this first, so that work on a dead host is skipped (and
    ``leftover`` recorded for its return) instead of waiting for a
    time-out."""
    state = ctx.services.store.get_host(host)["state"]
    if state in gone:
        raise HostGone(f"host {host} is {state}", host=host,
                       leftover=leftover)


def leave_if_unreachable(ctx, host, method, leftover, **params):
    """An undo's agent call that removes something not running (files, a
    definition), or that only puts back what is off (start, restore on a
    cold move's source; ``leftover`` None): when the host is gone or
    cannot be reached it is skipped with ``leftover`` recorded, to be
    removed when the host returns.  Never for stopping a guest that may
    run (destroy_on)."""
    require_host(ctx, host, leftover)
    try:
        return common.agent_call(ctx, host, method, **params)
    except HostUnreachable as err:
        raise HostGone(f"host {host} unreachable: {one_line(err)}",
                       host=host, leftover=leftover) from None


def best_effort(ctx, what, host, method, **params):
    """An agent call whose failure must not stop an undo; False if it
    failed."""
    try:
        common.agent_call(ctx, host, method, **params)
        return True
    except DroverError as err:
        LOG.warning("%s on %s failed: %s", what, host, err)
        ctx.progress(f"{what} on {host} failed: {err}")
        return False


# -- steps by role ---------------------------------------------------------

def fetch_image(role, which="image_uuid", image_key=None):
    """Step: an image into the cache of host ``ctx[role]`` (a cache:
    nothing to undo): the one whose uuid is ``ctx[image_key]``, else the
    one the instance's column ``which`` names (its own image, or the
    snapshot a shelved instance is held in)."""
    def step(ctx):
        image = ctx.services.store.get_image(
            ctx[image_key] if image_key else common.instance(ctx)[which])
        path = images.ensure_on_host(ctx.services.hosts, ctx[role], image,
                                     ctx.progress)
        return {"image_path": path, "image_format": image["format"]}
    step.__name__ = f"fetch_image_on_{role}"
    return step


def define_on(role, flavor_key=None):
    """Step: define the instance's domain on ``ctx[role]``, with the
    flavor in ``ctx[flavor_key]`` (default: the instance's)."""
    def step(ctx):
        flavor = ctx[flavor_key] if flavor_key else None
        common.agent_call(ctx, ctx[role], "instance.define",
                          spec=common.guest_spec(common.instance(ctx),
                                                 flavor))
    step.__name__ = f"define_on_{role}"
    return step


def undefine_on(role):
    def step(ctx):
        leave_if_unreachable(ctx, ctx[role], "instance.undefine",
                             leftover(ctx, "domain"),
                             uuid=ctx.params["uuid"])
    step.__name__ = f"undefine_on_{role}"
    return step


def start_on(role, keep_stopped=False):
    """Step: power the instance on at ``ctx[role]``; ``keep_stopped``: not
    if it was SHUTOFF before the task (ctx["old_vm_state"])."""
    def step(ctx):
        if keep_stopped and ctx.get("old_vm_state") == states.STOPPED:
            return
        ctx.progress(f"starting on {ctx[role]}")
        common.instance_call(ctx, ctx[role], "instance.start")
    step.__name__ = f"start_on_{role}"
    return step


def destroy_on(role):
    """Step (an undo): the guest powered off at ``ctx[role]``.  Skipped
    only when that host is known to be off (fenced)."""
    def step(ctx):
        require_host(ctx, ctx[role], leftover(ctx, "domain"), gone=OFF)
        common.instance_call(ctx, ctx[role], "instance.destroy")
    step.__name__ = f"destroy_on_{role}"
    return step


def leftover(ctx, *remove):
    """What an undo leaves on a gone host: ``remove`` of "domain",
    "files" of the task's instance (see agent.controller.host_cleanups,
    which removes it when the host is back, if the store still agrees)."""
    inst = ctx.services.store.get_instance(ctx.params["uuid"],
                                           deleted=True)
    return {"uuid": inst["uuid"], "storage": inst["storage"],
            "remove": list(remove)}


# -- host operations: one child task per instance --------------------------

def report_row(inst, result, dest=None, reason=None):
    """A row of a host operation's report (drain, host evacuate)."""
    return {"Server": inst["name"], "Result": result, "Destination": dest,
            "Reason": reason}


def host_report(store, task):
    """The report of a host operation still running: its host's
    instances."""
    return [report_row(i, "on host") for i in
            store.list_instances(host=task["params"]["host"])]


def _unfinished(store, inst, kind):
    for task in store.list_tasks(instance_uuid=inst["uuid"],
                                 unfinished=True):
        if task["kind"] == kind:
            return task["id"]
    return None


def run_children(ctx, queue, rows, kind, submit, words, stop=None):
    """Run one task of ``kind`` per instance of ``queue``,
    ``ctx.params["max_parallel"]`` at a time, and add each outcome to
    ``rows`` (report_row).  An unfinished task of ``kind`` on the
    instance (the parent was resumed) is waited for; else ``submit(inst)``
    starts one and returns its id, and its refusal leaves the instance
    behind.  ``stop()``: a reason to leave the rest of the queue behind,
    or None.  ``words``: (done, doing) for the report and the progress,
    e.g. ("moved", "migrating").  Returns ``rows``."""
    store, (done_word, doing_word) = ctx.services.store, words
    limit = max(1, int(ctx.params.get("max_parallel") or 1))
    queue, total, running = list(queue), len(queue), {}
    while queue or running:
        why = stop() if stop is not None else None
        if why:
            rows += [report_row(i, "left behind", reason=why) for i in queue]
            queue = []
        while queue and len(running) < limit:
            inst = queue.pop(0)
            task_id = _unfinished(store, inst, kind)
            if task_id is None:
                try:
                    task_id = submit(inst)
                except DroverError as err:
                    rows.append(report_row(inst, "left behind",
                                           reason=str(err)))
                    continue
            running[inst["uuid"]] = (inst, task_id)
        for uuid, (inst, task_id) in list(running.items()):
            task = store.task_get(task_id)
            if task["state"] == "done":
                rows.append(report_row(inst, done_word,
                                       store.get_instance(uuid)["host"]))
            elif task["state"] in ("failed", "superseded"):
                rows.append(report_row(inst, "failed", reason=task["error"]))
            else:
                continue
            del running[uuid]
        done = sum(r["Result"] == done_word for r in rows)
        failed = sum(r["Result"] == "failed" for r in rows)
        ctx.progress(f"{done}/{total} {done_word}, {failed} failed, "
                     f"{len(running)} {doing_word}, {len(queue)} waiting")
        if queue or running:
            time.sleep(HOST_OPERATION_POLL_S)
    return rows
