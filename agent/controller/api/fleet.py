"""API: the fleet as a whole.

``fleet.audit``: does the database match what the hosts run and hold?
(agent.controller.audit; it changes nothing.)
``fleet.load``: the measured load of hosts and guests.
``fleet.rebalance``: the rebalance plan (dry run: changes nothing) or
its execution (a ``rebalance`` task); ``fleet.rebalance_report``;
``fleet.rebalance_status``: what automatic rebalancing last decided."""
from agent.common.errors import InvalidInput
from agent.conf import CONF
from agent.controller import audit, rebalance
from agent.controller.ops import rebalance as rebalance_op


def fleet_audit(svc):
    """The audit's findings (kind, host, instance, detail); [] when the
    fleet matches the database."""
    return audit.run(svc.store, svc.hosts)


def fleet_load(svc, servers=False):
    """Per host: its guests' measured CPU (cores) and memory (MiB) summed,
    and its CPU's busy fraction as the host reports it; ``servers``: per
    instance instead (None: not measured yet)."""
    usage = svc.load.usage(CONF.rebalance.load_window) if svc.load else {}
    if servers:
        return [{"Server": i["name"], "Host": i["host"],
                 "CPU": _rounded(usage.get(i["uuid"], {}).get("cpu"), 3),
                 "Memory MB": _rounded(usage.get(i["uuid"], {})
                                       .get("memory_mb"), 0)}
                for i in svc.store.list_instances() if i["host"]]
    rows = {h["name"]: {"Host": h["name"], "vCPUs": h["vcpus"],
                        "Guests": 0, "Guest CPU": 0.0,
                        "Guest Memory MB": 0.0,
                        "Host CPU Busy": svc.load.host_cpu(h["name"])
                        if svc.load else None}
            for h in svc.store.list_hosts()}
    for inst in svc.store.list_instances():
        row = rows.get(inst["host"])
        if row is None:
            continue
        used = usage.get(inst["uuid"], {})
        row["Guests"] += 1
        row["Guest CPU"] += used.get("cpu") or 0.0
        row["Guest Memory MB"] += used.get("memory_mb") or 0.0
    for row in rows.values():
        row["Guest CPU"] = round(row["Guest CPU"], 3)
        row["Guest Memory MB"] = round(row["Guest Memory MB"])
    return list(rows.values())


def _rounded(value, digits):
    return None if value is None else round(value, digits)


def fleet_rebalance(svc, dry_run=True, metric="cpu", threshold=None,
                    max_moves=5, max_parallel=2):
    params = rebalance_op.precheck(svc, None, {
        "metric": metric, "threshold": threshold, "max_moves": max_moves,
        "max_parallel": max_parallel})
    if dry_run:
        return rebalance.summary(rebalance.current_plan(
            svc, params["metric"], params["threshold"],
            params["max_moves"], rebalance.predictor(svc)))
    return {"task_id": svc.admission.submit_fleet("rebalance", **params)}


def fleet_rebalance_report(svc, task_id):
    task = svc.store.task_get(task_id)
    if task["kind"] != rebalance_op.KIND:
        raise InvalidInput(f"task {task_id} is not a rebalance")
    out = {"state": task["state"], "error": task["error"], "moves": [],
           "score_before": None, "score_planned": None, "score_after": None}
    for step in svc.store.steps_get(task_id):
        data = step.get("data") or {}
        for key in ("score_before", "score_planned", "score_after"):
            if key in data:
                out[key] = data[key]
        if data.get("report") is not None:
            out["moves"] = data["report"]
    return out


def fleet_rebalance_status(svc):
    """The automatic rebalancer's last round: its decision and why (how
    many imbalanced rounds it has held for), or that it is off."""
    if svc.rebalancer is None:
        return {"enabled": False, "interval": None, "threshold": None,
                "hold_rounds": None, "rounds": 0, "last_round_at": None,
                "last_reason": "automatic rebalancing is off "
                               "([rebalance] enabled)",
                "last_acted": False, "last_task_id": None}
    return svc.rebalancer.status()


METHODS = {
    "fleet.audit": fleet_audit,
    "fleet.load": fleet_load,
    "fleet.rebalance": fleet_rebalance,
    "fleet.rebalance_report": fleet_rebalance_report,
    "fleet.rebalance_status": fleet_rebalance_status,
}
