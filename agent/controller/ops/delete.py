"""Delete an instance.

0. confirm_*: an instance waiting in VERIFY_RESIZE is confirmed first, as
   Nova does (ops/resize_confirm's steps): its source domain, <uuid>_resize
   and source claim go, so nothing is left on the other host
1. destroy:  power the guest off (no graceful wait: it is going away)
2. undefine: remove the domain
3. cleanup:  remove the instance directory
4. deleted:  release its capacity, free its address, mark it deleted

Forward only (there is nothing to undo a deletion to); resumed forward
after a restart.  An instance that was never placed is only marked.
"""
from agent.controller import states
from agent.controller.ops import common, resize_confirm
from agent.controller.tasks.workflow import Step, Workflow


def precheck(services, inst, params):
    """A resize waiting for confirmation is confirmed first (Nova)."""
    return dict(params, confirm_resize=inst["vm_state"] == states.RESIZED)


def _on_host(ctx, method, **params):
    host = common.instance(ctx)["host"]
    if host is not None:
        common.instance_call(ctx, host, method, **params)


def destroy(ctx):
    ctx.progress("powering off")
    _on_host(ctx, "instance.destroy")


def undefine(ctx):
    _on_host(ctx, "instance.undefine")


def cleanup(ctx):
    _on_host(ctx, "instance.cleanup", storage=common.instance(ctx)["storage"])


def mark_deleted(ctx):
    ctx.services.store.mark_instance_deleted(ctx.params["uuid"])
    ctx.progress("deleted")


def workflow(params):
    confirm = []
    if params.get("confirm_resize"):
        confirm = [Step("confirm_find", resize_confirm.find),
                   Step("confirm_source", resize_confirm.clear_source),
                   Step("confirm_discard", resize_confirm.discard),
                   Step("confirm_claims", resize_confirm.confirmed)]
    return Workflow("delete", confirm + [
        Step("destroy", destroy, commit=True),
        Step("undefine", undefine),
        Step("cleanup", cleanup),
        Step("deleted", mark_deleted),
    ], resume="forward", on_failed=common.set_error)
