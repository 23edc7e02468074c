"""Evacuate a failed host: every instance on it is evacuated elsewhere
(agent.controller.ops.evacuate, each its own task).

0. (precheck): refused unless the host is fenced or set down
   (fencing.may_evacuate); --max-parallel >= 1
1. evacuate:   each instance through admission ("evacuate", superseding
               what was in flight on it), ``max_parallel`` at a time,
               showing progress; ends with the report: evacuated (and
               where), failed (with the reason), left behind (why: a
               local disk without --rebuild, a state that cannot be
               evacuated, a refusal)

The host is not disabled: it is out of service until its return is
reconciled (agent.controller.return_host), and an operator's disable is
kept then.  Resumed forward after a controller restart: evacuations in
flight are waited for (the report then lists only this run's).
"""

from agent.common.errors import Conflict, InvalidInput
from agent.controller import fencing
from agent.controller.ops import evacuate, steps
from agent.controller.tasks.workflow import Step, Workflow

KIND = "host_evacuate"


def check_host(host):
    ok, why = fencing.may_evacuate(host)
    if not ok:
        raise Conflict(why)


def precheck(services, host, params):
    check_host(host)
    limit = params.get("max_parallel", 2)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise InvalidInput(f"--max-parallel must be >= 1, not {limit!r}")
    return dict(params, max_parallel=limit,
                rebuild=bool(params.get("rebuild")))


def triage(inst, rebuild):
    """None if ``inst`` is to be evacuated, else why it is left behind."""
    if inst["vm_state"] not in evacuate.EVACUABLE:
        return f"cannot be evacuated in vm_state {inst['vm_state']}"
    if inst["storage"] == "local" and not rebuild:
        return ("its disk was on the host's local storage: that data is "
                "lost; evacuate with --rebuild to rebuild it from its image")
    return None


def evacuate_all(ctx):
    svc, host = ctx.services, ctx.params["host"]
    rebuild = ctx.params.get("rebuild", False)
    rows, queue = [], []
    for inst in svc.store.list_instances(host=host):
        why = triage(inst, rebuild)
        if why is None:
            queue.append(inst)
        else:
            rows.append(steps.report_row(inst, "left behind", reason=why))

    def start(inst):
        return svc.admission.submit("evacuate", inst["uuid"],
                                    supersede=True, rebuild=rebuild)[1]
    return {"report": steps.run_children(
        ctx, queue, rows, evacuate.KIND, start, ("evacuated", "evacuating"))}


def workflow(params):
    return Workflow(KIND, [Step("evacuate", evacuate_all)],
                    resume="forward")
