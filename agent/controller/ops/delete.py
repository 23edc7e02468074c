"""Delete an instance.

0. confirm_*: an instance waiting in VERIFY_RESIZE is confirmed first, as
   Nova does (ops/resize_confirm's steps): its source domain, <uuid>_resize
   and source claim go, so nothing is left on the other host
1. reach:    an instance whose host is down in the store is not looked
             for there: a clean-up is recorded for that host instead (its
             domain and directory, agent/controller/host_cleanups.py,
             done when it answers again) and steps 2-4 leave it alone
2. destroy:  power the guest off (no graceful wait: it is going away)
3. undefine: remove the domain
4. cleanup:  remove the instance directory
   (an agent that cannot be reached in 2-4 is as in 1: the clean-up is
   recorded and the rest left to it)
5. deleted:  release its capacity, free its address, mark it deleted
6. shelved:  a shelved instance's image removed (its disk: what the user
             asked to delete)

Forward only (there is nothing to undo a deletion to); resumed forward
after a restart.  An instance that was never placed is only marked.
Deleting on a down host breaks no promise: the guest is not started
anywhere else, and its disk is what the user asked to delete.
"""
from agent.common.errors import one_line
from agent.controller import images, states
from agent.controller.ops import common, resize_confirm
from agent.controller.tasks.workflow import Step, Workflow
from agent.transport.errors import HostUnreachable

REMOVE = ("domain", "files")


def _defer(ctx, host, reason):
    """Leave the rest to ``host``'s clean-up when it answers again."""
    inst = common.instance(ctx)
    ctx.services.store.record_cleanup(host, inst["uuid"], inst["storage"],
                                      REMOVE, reason=reason)
    ctx.progress(f"{host} cannot be reached: it removes the guest when it "
                 "is back")
    return {"deferred_to": host}


def reach(ctx):
    host = common.instance(ctx)["host"]
    if host is not None and \
            ctx.services.store.get_host(host)["state"] == "down":
        return _defer(ctx, host, f"deleted while {host} was down")
    return None


def precheck(services, inst, params):
    """A resize waiting for confirmation is confirmed first (Nova)."""
    return dict(params, confirm_resize=inst["vm_state"] == states.RESIZED)


def _on_host(ctx, method, **params):
    host = common.instance(ctx)["host"]
    if host is None or ctx.get("deferred_to"):
        return None
    try:
        common.instance_call(ctx, host, method, **params)
    except HostUnreachable as err:
        return _defer(ctx, host, one_line(err))
    return None


def destroy(ctx):
    ctx.progress("powering off")
    return _on_host(ctx, "instance.destroy")


def undefine(ctx):
    return _on_host(ctx, "instance.undefine")


def cleanup(ctx):
    return _on_host(ctx, "instance.cleanup",
                    storage=common.instance(ctx)["storage"])


def mark_deleted(ctx):
    ctx.services.store.mark_instance_deleted(ctx.params["uuid"])
    ctx.progress("deleted")


def discard_shelved(ctx):
    inst = ctx.services.store.get_instance(ctx.params["uuid"], deleted=True)
    if inst.get("shelved_image_uuid"):
        images.discard(ctx.services.store, inst["shelved_image_uuid"])


def workflow(params):
    confirm = []
    if params.get("confirm_resize"):
        confirm = [Step("confirm_find", resize_confirm.find),
                   Step("confirm_source", resize_confirm.clear_source),
                   Step("confirm_discard", resize_confirm.discard),
                   Step("confirm_claims", resize_confirm.confirmed)]
    return Workflow("delete", confirm + [
        Step("reach", reach),
        Step("destroy", destroy, commit=True),
        Step("undefine", undefine),
        Step("cleanup", cleanup),
        Step("deleted", mark_deleted),
        Step("shelved", discard_shelved),
    ], resume="forward", on_failed=common.set_error)
