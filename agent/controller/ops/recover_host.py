"""Recover a failed host automatically (task kind "recover_host"): fence
it, then evacuate its HA instances.  Started by the detector
(agent.controller.recovery) when a host has not answered for [ha]
lease_time; one at a time per host (admission).

1. detect:    the host's HA instances (agent.controller.ha_policy), in
              priority groups, highest first; an instance action
              "ha-recover" on each (``server event list``) and a host
              event "failed" (``host event list``) saying why; non-HA
              instances are named and left untouched
2. fence:     until the host may be evacuated (fencing.may_evacuate):
              with its fence agent (agent.controller.fencing.fence), or,
              without one, the self-fence verdict of its lease
              (``services.leases.verdict(host)``: only "fenced" counts)
              -- a fence that fails, a verdict "wait", "alive" or
              "unknown", or no lease at all, evacuates nothing: the reason
              is a host event and host show's fence_error, and the fence
              is tried again every [ha] fence_retry_interval.  A host
              that answers again meanwhile is alive: the recovery is
              abandoned, nothing moved (the poller's return path takes it).
              The operator may end the wait: ``host fence`` or ``host set
              --down``.
3. evacuate:  each HA instance through admission ("evacuate", each its own
              task, agent.controller.ops.evacuate), a priority group after
              the one above it, ``max_parallel`` at a time, so that when
              capacity is short the higher priorities have it; a local
              disk is left behind (its data went with the host), as is a
              state that cannot be evacuated
4. done:      a host event "recovered" with the report; each instance's
              action finished with its outcome

Argued from the two promises: nothing starts elsewhere before step 2 has
proof that the host is off (fenced, or set down by the operator), and
step 3 is issue 9's evacuation, which checks that again and never
deletes the failed host's disks.  Resumed forward after a controller
restart: detect's actions are kept in its step data; a fence runs again
from action=off (idempotent); evacuations in flight are waited for.
"""
import logging
import time

from agent.common.errors import DroverError, one_line
from agent.conf import CONF
from agent.controller import fencing, ha_policy
from agent.controller.ops import evacuate, host_evacuate, steps
from agent.controller.tasks.workflow import Step, Workflow

LOG = logging.getLogger(__name__)

KIND = "recover_host"
ACTION = "ha-recover"           # the instance action of each HA instance
WORDS = ("evacuated", "evacuating")
FIRST_ASK_S = 2.0       # is it back? asked before the first fence


# -- pure decisions -----------------------------------------------------------

def fence_path(host, leases_present):
    """How ``host`` (a record) is to be fenced: "agent" (its fence agent),
    "lease" (its self-fence lease), or None (neither: only the operator
    can say it is off)."""
    if host.get("fence_agent"):
        return "agent"
    return "lease" if leases_present else None


def no_fence_reason(name):
    return (f"host {name} has no fence agent and no self-fence lease: "
            "nothing proves it is off, so nothing is evacuated; set one "
            f"(drover host set --fence-agent AGENT {name}), or drover host "
            f"set --down {name} if you know it is off")


def verdict_reason(name, verdict):
    """Why a self-fence verdict other than "fenced" evacuates nothing."""
    why = {"wait": "its lease has not lapsed yet (lease_time + margin)",
           "alive": "its peers still reach it: the fault is between the "
                    "controller and the host, its guests still run",
           "unknown": "too few peers answer to say it is isolated"}
    return (f"host {name} is not fenced ({verdict.state}: "
            f"{verdict.reason or why.get(verdict.state, '')}); nothing is "
            "evacuated")


# -- steps --------------------------------------------------------------------

def _event(ctx, event, details, result="Success"):
    ctx.services.store.add_host_event(ctx.params["host"], event, result,
                                      details, task_id=ctx.task_id)


def _instance_event(ctx, uuid, event, details, result="Success"):
    store = ctx.services.store
    action_id = ctx["actions"].get(uuid)
    if action_id is not None:
        ev = store.start_event(action_id, f"{KIND}_{event}")
        store.finish_event(ev["id"], result, details[:1000])


def detect(ctx):
    store, name = ctx.services.store, ctx.params["host"]
    instances = store.list_instances(host=name)
    groups = ha_policy.recovery_order(store, instances)
    ha = {i["uuid"] for g in groups for i in g}
    others = sorted(i["name"] for i in instances if i["uuid"] not in ha)
    reason = ctx.params.get("reason") or "not heard from"
    actions = {}
    for inst in (i for g in groups for i in g):
        act = store.start_action(inst["uuid"], ACTION,
                                 message=f"host {name} failed: {reason}")
        actions[inst["uuid"]] = act["id"]
    details = (f"{reason}; {len(ha)} HA instance(s) to recover"
               + (f"; not HA, left untouched: {', '.join(others)}"
                  if others else ""))
    store.add_host_event(name, "failed", "Error", details,
                         task_id=ctx.task_id)
    ctx.data["actions"] = actions
    for uuid in actions:
        _instance_event(ctx, uuid, "detect", f"host {name}: {reason}")
    ctx.progress(f"host {name} failed: {len(ha)} HA instance(s)")
    return {"actions": actions,
            "order": [[i["uuid"] for i in g] for g in groups]}


def _answers(ctx, name, timeout):
    try:
        ctx.services.hosts.call(name, "host.facts", timeout=timeout)
        return True
    except DroverError:
        return False


def _try_fence(ctx, host):
    """One attempt: (fenced, the reason when not)."""
    svc, name = ctx.services, host["name"]
    leases = getattr(svc, "leases", None)
    path = fence_path(host, leases is not None)
    if path == "agent":
        try:
            fencing.fence(svc.store, name, ctx.progress)
            return True, f"its fence agent {host['fence_agent']} reported " \
                         "it off"
        except DroverError as err:
            return False, one_line(err)
    if path == "lease":
        verdict = leases.verdict(name)
        if verdict.state == "fenced":
            svc.store.mark_host_fenced(name)
            return True, f"its self-fence lease lapsed: {verdict.reason}"
        return False, verdict_reason(name, verdict)
    return False, no_fence_reason(name)


def fence(ctx):
    store, name = ctx.services.store, ctx.params["host"]
    attempts, last = 0, None
    began = store.task_get(ctx.task_id)["created_at"]
    while True:
        host = store.get_host(name)
        ok, why = fencing.may_evacuate(host)
        if ok:
            break
        # Answered since the recovery began (the poller saw it), or
        # answers now: asked before every fence, the first with a short
        # time-out (a task resumed after a controller restart must not
        # fence a host that came back during the outage).
        if (host.get("last_seen") or "") > began or _answers(
                ctx, name, FIRST_ASK_S if not attempts
                else CONF.controller.poll_interval * 2):
            why = (f"host {name} answers again: it is alive, its guests "
                   "were not moved; recovery abandoned")
            _event(ctx, "abandoned", why, "Info")
            for uuid in ctx["actions"]:
                _instance_event(ctx, uuid, "fence", why, "Skipped")
            return {"abandoned": why}
        attempts += 1
        ok, why = _try_fence(ctx, host)
        if ok:
            break
        if not host["fence_agent"]:     # the agent's failure is recorded
            store.fence_failed(name, why[:500])     # by fencing.fence
        if why != last:         # a new reason: say it (not every retry)
            _event(ctx, "fence", f"attempt {attempts}: {why}; retrying "
                   f"every {CONF.ha.fence_retry_interval:g} s", "Error")
            for uuid in ctx["actions"]:
                _instance_event(ctx, uuid, "fence", why, "Error")
            last = why
        ctx.progress(f"not fenced (attempt {attempts}): {why}")
        LOG.warning("host %s: not fenced, nothing evacuated: %s", name, why)
        time.sleep(CONF.ha.fence_retry_interval)
    _event(ctx, "fenced", why)
    for uuid in ctx["actions"]:
        _instance_event(ctx, uuid, "fence", why)
    out = {"fenced": why, "attempts": attempts}
    leases = getattr(ctx.services, "leases", None)
    if fence_path(host, leases is not None) == "lease":
        # A self-fenced host destroyed the HA guests it acknowledged in
        # its last renewal, and only those: an instance made HA after
        # that may still run there, so it is not evacuated.
        out["self_fenced"] = leases.acknowledged_ha(name)
    return out


def evacuate_ha(ctx):
    if ctx.get("abandoned"):
        return {"report": []}
    svc, name = ctx.services, ctx.params["host"]
    on_host = {i["uuid"]: i for i in svc.store.list_instances(host=name)}
    rows = []

    def start(inst):
        return svc.admission.submit("evacuate", inst["uuid"],
                                    supersede=True, rebuild=False)[1]
    for group in ctx["order"]:
        queue, before = [], len(rows)
        for uuid in group:
            inst = on_host.get(uuid)
            if inst is None:
                continue        # gone from the host meanwhile
            why = host_evacuate.triage(inst, rebuild=False)
            only = ctx.get("self_fenced")
            if why is None and only is not None and uuid not in only:
                why = ("not among the HA guests the host destroyed when it "
                       "fenced itself (it may still run there)")
            if why is None:
                queue.append(inst)
            else:
                rows.append(steps.report_row(inst, "left behind",
                                             reason=why))
        steps.run_children(ctx, queue, rows, evacuate.KIND, start, WORDS)
        for row in rows[before:]:
            uuid = next(u for u in group if on_host.get(u, {}).get("name")
                        == row["Server"])
            ok = row["Result"] == WORDS[0]
            _instance_event(ctx, uuid, "evacuate",
                            f"evacuated to {row['Destination']}" if ok else
                            f"{row['Result']}: {row['Reason']}",
                            "Success" if ok else "Error")
    return {"report": rows}


def done(ctx):
    store = ctx.services.store
    report = ctx["report"]
    if ctx.get("abandoned"):
        summary = ctx["abandoned"]
    else:
        moved = [r for r in report if r["Result"] == WORDS[0]]
        summary = (f"{len(moved)}/{len(report)} HA instance(s) evacuated"
                   + "".join(f"; {r['Server']}: {r['Result']} "
                             f"({r['Reason']})" for r in report
                             if r["Result"] != WORDS[0]))
        _event(ctx, "recovered", summary,
               "Success" if len(moved) == len(report) else "Error")
    for action_id in ctx["actions"].values():
        store.finish_action(action_id, message=summary[:255])
    ctx.progress(summary)
    return {"summary": summary}


def failed(ctx, err):
    _event(ctx, "recovery_failed", one_line(err), "Error")


def workflow(params):
    return Workflow(KIND, [
        Step("detect", detect),
        Step("fence", fence),
        Step("evacuate", evacuate_ha),
        Step("done", done),
    ], resume="forward", on_failed=failed)


def in_progress(store, name):
    """The id of an unfinished recovery of host ``name``, or None."""
    for task in store.list_tasks(unfinished=True):
        if task["kind"] == KIND and task["params"].get("host") == name:
            return task["id"]
    return None
