"""API: automatic recovery as the operator sees it (``ha status``,
``host event list``, the recovery fields of ``host show``)."""
import datetime

from agent.conf import CONF
from agent.controller import ha_policy, recovery
from agent.controller.db.models import utcnow
from agent.controller.ops.recover_host import ACTION as HOST_RECOVERY
from agent.controller.ops.recover_host import KIND as RECOVER_KIND

RECOVERY_ACTIONS = (HOST_RECOVERY, recovery.RESTART, recovery.RELOCATE,
                    recovery.GIVE_UP)


def _since():
    return (utcnow() - datetime.timedelta(
        seconds=CONF.ha.restart_window)).isoformat(timespec="seconds") + "Z"


def ha_status(svc):
    """Every HA instance: its state, host, automatic restarts and
    relocations in [ha] restart_window, and its last recovery."""
    store, rows = svc.store, []
    for inst in store.list_instances():
        if not ha_policy.is_ha(store, inst):
            continue
        actions = store.list_actions(inst["uuid"])
        restarts, relocations = recovery.attempts(actions, _since())
        last = [a for a in actions if a["action"] in RECOVERY_ACTIONS]
        rows.append({
            "ID": inst["uuid"], "Name": inst["name"],
            "Status": inst["status"], "Host": inst["host"],
            "Priority": ha_policy.ha_priority(store, inst),
            "Restarts": restarts, "Relocations": relocations,
            "Last Recovery": (f"{last[-1]['action']} at "
                              f"{last[-1]['start_time']}" if last else None),
            "Reason": (last[-1]["message"] if last else None)
            or inst.get("error")})
    return rows


def host_events(svc, name, limit=50):
    svc.store.get_host(name)
    return [{"Time": e["created_at"], "Event": e["event"],
             "Result": e["result"], "Details": e["details"]}
            for e in svc.store.list_host_events(name, limit=limit)]


def recovery_fields(svc, host):
    """What host show adds: the fence state, and the host's automatic
    recovery (the last one: its state and progress, or none)."""
    store, name = svc.store, host["name"]
    if host["state"] == "fenced":
        fence = f"fenced at {host.get('fenced_at')}"
    elif host.get("fence_error"):
        fence = f"not fenced: {host['fence_error']}"
    else:
        fence = "not fenced"
    fence += (f" (fence agent {host['fence_agent']})"
              if host.get("fence_agent") else " (no fence agent: "
              "self-fence lease)")
    tasks = [t for t in store.list_tasks() if t["kind"] == RECOVER_KIND
             and t["params"].get("host") == name]
    rec = None
    if tasks:
        last = tasks[-1]
        rec = f"task {last['id']} {last['state']}"
        if last.get("progress"):
            rec += f": {last['progress']}"
        elif last.get("error"):
            rec += f": {last['error']}"
    events = store.list_host_events(name, limit=1)
    return {"fence_state": fence, "recovery": rec,
            "last_event": (f"{events[-1]['event']} {events[-1]['result']}: "
                           f"{events[-1]['details']}" if events else None)}


METHODS = {"ha.status": ha_status, "host.events": host_events}
