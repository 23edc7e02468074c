"""Stop, start and reboot an instance on its host.

stop:   shutdown (graceful, then destroy after [libvirt] shutdown_timeout)
        -> SHUTOFF
start:  start -> ACTIVE
reboot: soft: graceful shutdown then start; hard: destroy then start

A failure leaves vm_state as it was, clears the task and keeps the
reason; the next poll records what libvirt says.
"""
from agent.controller import states
from agent.controller.ops import common
from agent.controller.tasks.workflow import Step, Workflow


def _call(ctx, method, **params):
    return common.instance_call(ctx, common.instance(ctx)["host"], method,
                                **params)


def shutdown(ctx):
    ctx.progress("shutting down")
    return {"shutdown": _call(ctx, "instance.stop")["result"]}


def destroy(ctx):
    ctx.progress("powering off")
    _call(ctx, "instance.destroy")


def power_on(ctx):
    ctx.progress("starting")
    _call(ctx, "instance.start")


def mark_stopped(ctx):
    common.update(ctx, vm_state=states.STOPPED, task_state=None,
                  power_state=states.SHUTDOWN, error=None)


def mark_active(ctx):
    common.update(ctx, vm_state=states.ACTIVE, task_state=None,
                  power_state=states.RUNNING, error=None)


def stop_workflow(params):
    return Workflow("stop", [Step("shutdown", shutdown),
                             Step("stopped", mark_stopped)],
                    on_failed=common.reset_task_state)


def start_workflow(params):
    return Workflow("start", [Step("start", power_on),
                              Step("active", mark_active)],
                    on_failed=common.reset_task_state)


def reboot_workflow(params):
    first = Step("destroy", destroy) if params.get("hard") else \
        Step("shutdown", shutdown)
    return Workflow("reboot", [first, Step("start", power_on),
                               Step("active", mark_active)],
                    on_failed=common.reset_task_state)
