"""The rebalance plan of the fleet as it is now: the store's hosts,
instances and server groups and the measured load (services.load) turned
into the records of the pure planner (agent.controller.rebalance_plan),
and its Plan turned into rows.  Reads only; changes nothing."""
from agent.common.errors import DroverError
from agent.conf import CONF
from agent.controller import move_prediction, rebalance_plan, states
from agent.controller.scheduler import Policy

MOVABLE_POWER = (states.RUNNING, states.POWER_PAUSED)


def no_prediction(guest, source, destination):
    """``predict_move`` where no prediction is wanted (the automatic
    rebalancer, the execute step): unknown."""
    return None


def predictor(svc):
    """``predict_move`` for a dry run: agent.controller.move_prediction's
    prediction of each planned move (a second or so each: the guest's
    dirty rate is measured now), None where it cannot be made (the
    host does not answer)."""
    def predict_move(guest, source, destination):
        try:
            return move_prediction.predict_move(
                svc, svc.store.get_instance(guest.uuid), destination)
        except DroverError:
            return None
    return predict_move


def guests(store, load, window_s):
    """A rebalance_plan.Guest for every instance on a host."""
    groups = store.group_memberships()
    usage = load.usage(window_s) if load is not None else {}
    out = []
    for inst in store.list_instances():
        if not inst["host"]:
            continue
        used = usage.get(inst["uuid"], {})
        movable = (inst["vm_state"] in (states.ACTIVE, states.PAUSED)
                   and inst["power_state"] in MOVABLE_POWER
                   and inst["task_state"] is None)
        out.append(rebalance_plan.Guest(
            inst["uuid"], inst["name"], inst["host"], inst["flavor"],
            cpu=used.get("cpu"), memory_mb=used.get("memory_mb"),
            zone=inst["requested_availability_zone"],
            group=groups.get(inst["uuid"]), movable=movable))
    return out


def current_plan(svc, metric="cpu", threshold=None, max_moves=5,
                 predict_move=no_prediction):
    """The Plan for the fleet now (``threshold`` None: [rebalance]
    threshold)."""
    store = svc.store
    if threshold is None:
        threshold = CONF.rebalance.threshold
    groups = {g["name"]: g for g in store.list_groups()}
    return rebalance_plan.plan(
        store.host_states(),
        guests(store, svc.load, CONF.rebalance.load_window), groups,
        Policy.from_conf(), metric=metric, threshold=threshold,
        max_moves=max_moves, predict_move=predict_move)


def current_score(svc, metric):
    """The score of the fleet as placed now (no move planned)."""
    return current_plan(svc, metric, threshold=float("inf")).score_before


def _pct(fraction):
    return f"{fraction * 100:.0f}%"


def _seconds(prediction, attr):
    value = prediction.get(attr) if prediction else None
    return "-" if value is None else f"{value:.1f} s"


def _ms(prediction, attr):
    value = prediction.get(attr) if prediction else None
    return "-" if value is None else f"{value * 1000:.0f} ms"


def move_rows(plan):
    """One row per move: loads before -> after, the prediction ("-"
    while unknown)."""
    return [{"Server": m.name, "Source": m.source,
             "Destination": m.destination,
             "Source Load": f"{_pct(m.source_load[0])} -> "
                            f"{_pct(m.source_load[1])}",
             "Destination Load": f"{_pct(m.destination_load[0])} -> "
                                 f"{_pct(m.destination_load[1])}",
             "Predicted Time": _seconds(m.prediction, "duration_s"),
             "Predicted Downtime": _ms(m.prediction, "downtime_s")}
            for m in plan.moves]


def summary(plan):
    return {"metric": plan.metric, "score_before": plan.score_before,
            "score_after": plan.score_after,
            "loads_before": plan.loads_before,
            "loads_after": plan.loads_after, "reason": plan.reason,
            "moves": move_rows(plan)}
