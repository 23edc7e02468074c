"""Delete an instance.

1. destroy:  power the guest off (no graceful wait: it is going away)
2. undefine: remove the domain
3. cleanup:  remove the instance directory
4. deleted:  release its capacity, free its address, mark it deleted

Forward only (there is nothing to undo a deletion to); resumed forward
after a restart.  An instance that was never placed is only marked.
"""
from agent.controller.ops import common
from agent.controller.tasks.workflow import Step, Workflow


def _on_host(ctx, method, **params):
    host = common.instance(ctx)["host"]
    if host is not None:
        common.agent_call(ctx, host, method, uuid=ctx.params["uuid"],
                          **params)


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
    return Workflow("delete", [
        Step("destroy", destroy),
        Step("undefine", undefine),
        Step("cleanup", cleanup),
        Step("deleted", mark_deleted),
    ], resume="forward", on_failed=common.set_error)
