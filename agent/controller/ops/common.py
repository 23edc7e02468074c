"""What operation modules share: reading the instance, calling agents,
the guest's metadata, and the states a failed task leaves behind."""
import ipaddress
import logging

from agent.common.errors import DroverError, one_line
from agent.conf import CONF
from agent.controller import states

LOG = logging.getLogger(__name__)


def instance(ctx):
    return ctx.services.store.get_instance(ctx.params["uuid"])


def agent_call(ctx, host, method, timeout=None, **params):
    return ctx.services.hosts.call(host, method, timeout=timeout, **params)


def instance_call(ctx, host, method, **params):
    """An instance primitive of the agent on ``host``, for this task's
    instance."""
    return agent_call(ctx, host, method, uuid=ctx.params["uuid"], **params)


def update(ctx, **values):
    """Change the task's instance, as its owner (refused with NotOwner once
    another task owns it)."""
    return ctx.services.store.update_instance(ctx.params["uuid"],
                                              owner=ctx.task_id, **values)


def guest_spec(inst, flavor=None):
    """What the agent needs to define the instance's domain."""
    flavor = flavor or inst["flavor"]
    prefix = ipaddress.ip_network(CONF.controller.guest_network).prefixlen
    metadata = dict(inst.get("guest_metadata") or {})
    metadata.update({"ip": f"{inst['ip']}/{prefix}",
                     "hostname": inst["name"]})
    return {"uuid": inst["uuid"], "name": inst["name"],
            "vcpus": flavor["vcpus"], "memory_mib": flavor["ram_mb"],
            "disk_gb": flavor["disk_gb"], "mac": inst["mac"],
            "storage": inst["storage"], "flavor": flavor["name"],
            "metadata": metadata}


def reset_task_state(ctx, err):
    """A failed operation that changed nothing lasting: back to no task,
    with the reason kept for server show."""
    LOG.warning("instance %s: %s failed: %s", ctx.params["uuid"],
                ctx.params.get("action", "task"), err)
    update(ctx, task_state=None, error=one_line(err))


def set_error(ctx, err):
    """A failed operation that left the instance unusable: ERROR."""
    update(ctx, vm_state=states.ERROR, task_state=None,
           error=one_line(err))


def fail_past_commit(ctx, err):
    """A failed operation whose commit point decides: past it the
    instance is ERROR (the operator repairs it), before it every undo
    ran and it is back to no task, the reason kept."""
    if ctx.committed:
        set_error(ctx, err)
    else:
        reset_task_state(ctx, err)


def shared_storage(hosts, source, dest, storage):
    """drover's own check that ``source`` and ``dest`` share ``storage``:
    a probe file written in its instances path on the source is seen on
    the destination."""
    name = hosts.call(source, "storage.probe_write", storage=storage)["name"]
    try:
        return hosts.call(dest, "storage.probe_check", storage=storage,
                          name=name)["found"]
    finally:
        try:
            hosts.call(source, "storage.probe_remove", storage=storage,
                       name=name)
        except DroverError as err:
            LOG.warning("%s: removing probe %s: %s", source, name, err)
