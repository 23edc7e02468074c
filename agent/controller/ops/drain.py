"""Drain a host: every running instance live-migrates away.

0. (check_host, also before the task starts): a host that is not up is
   refused: live migration needs its agent and libvirt
1. disable: the host takes no new instances (stays disabled afterwards:
            the operator enables it again)
2. migrate: live-migrate its running and paused instances through the
            scheduler, ``max_parallel`` at a time, showing progress; ends
            with the report: moved, failed (with reasons), left behind
            (not running, or busy with another task); a host that goes
            down meanwhile starts no more, the rest are left behind

Resumed forward after a controller restart: live migrations still in
flight are waited for, the rest started.
"""

from agent.common.errors import Conflict, InvalidInput
from agent.controller import states
from agent.controller.ops import live_migrate, steps
from agent.controller.tasks.workflow import Step, Workflow

KIND = "drain"
MOVABLE = (states.RUNNING, states.POWER_PAUSED)


def check_host(host):
    """Refuse (Conflict) to drain ``host`` (a store record) unless it is
    up: the guests of a dead host cannot be migrated away."""
    if host["state"] != "up":
        raise Conflict(f"host {host['name']} is down: its instances cannot "
                       "be migrated away; they need evacuation once the "
                       f"host is fenced or set down (drover host evacuate "
                       f"{host['name']})")


def precheck(services, host, params):
    check_host(host)
    limit = params.get("max_parallel", 2)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise InvalidInput(f"--max-parallel must be >= 1, not {limit!r}")
    return dict(params, max_parallel=limit)


def disable(ctx):
    check_host(ctx.services.store.get_host(ctx.params["host"]))
    ctx.services.store.disable_host(ctx.params["host"], "drained")
    ctx.progress(f"{ctx.params['host']} disabled")


def migrate_all(ctx):
    svc, host = ctx.services, ctx.params["host"]
    rows, queue = [], []
    for inst in svc.store.list_instances(host=host):
        if inst["vm_state"] in (states.ACTIVE, states.PAUSED) and \
                inst["power_state"] in MOVABLE:
            queue.append(inst)
        else:
            rows.append(steps.report_row(
                inst, "left behind", reason="not running "
                f"({states.status(inst['vm_state'])}); cold-migrate it"))

    def host_went_down():
        try:
            check_host(svc.store.get_host(host))
        except Conflict as err:
            return str(err)
        return None

    def start(inst):
        return svc.admission.submit("live-migrate", inst["uuid"])[1]
    return {"report": steps.run_children(
        ctx, queue, rows, live_migrate.KIND, start, ("moved", "migrating"),
        stop=host_went_down)}


def workflow(params):
    return Workflow(KIND, [
        Step("disable", disable),
        Step("migrate", migrate_all),
    ], resume="forward")
