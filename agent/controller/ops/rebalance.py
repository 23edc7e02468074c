"""Rebalance the fleet: run the rebalance plan's live migrations.

1. plan:    the plan of ``drover fleet rebalance --dry-run`` for the
            fleet as it is now (agent.controller.rebalance), recorded in
            the task: a resumed task runs the plan it made, not a new one
2. migrate: live-migrate each planned guest to its planned destination
            through admission (the destination's filters, server groups
            included, run again there), ``max_parallel`` at a time, with
            progress; a move refused or failed is reported with its
            reason and the rest go on
3. report:  moved / failed with reasons, and the score measured after
            (the guests' measured load as now placed)

Nothing is undone: each move is a live migration of its own, with its own
rollback; a failed one leaves its guest running where it was.
"""
from agent.common.errors import InvalidInput
from agent.controller import rebalance, rebalance_plan
from agent.controller.ops import live_migrate, steps
from agent.controller.tasks.workflow import Step, Workflow

KIND = "rebalance"


def precheck(services, record, params):
    metric = params.get("metric", "cpu")
    if metric not in rebalance_plan.METRICS:
        raise InvalidInput(f"--metric must be one of "
                           f"{', '.join(rebalance_plan.METRICS)}, not "
                           f"{metric!r}")
    for key in ("max_parallel", "max_moves"):
        value = params.get(key, 2 if key == "max_parallel" else 5)
        if not isinstance(value, int) or isinstance(value, bool) or \
                value < 1:
            raise InvalidInput(f"--{key.replace('_', '-')} must be >= 1, "
                               f"not {value!r}")
        params[key] = value
    threshold = params.get("threshold")
    if threshold is not None and (
            not isinstance(threshold, int | float) or threshold < 0):
        raise InvalidInput(f"--threshold must be >= 0, not {threshold!r}")
    return dict(params, metric=metric)


def make_plan(ctx):
    p = ctx.params
    plan = rebalance.current_plan(ctx.services, p["metric"],
                                  p.get("threshold"), p["max_moves"])
    ctx.progress(f"{len(plan.moves)} move(s) planned, score "
                 f"{plan.score_before:.3f} -> {plan.score_after:.3f}")
    return {"moves": [{"uuid": m.instance, "name": m.name,
                       "source": m.source, "destination": m.destination}
                      for m in plan.moves],
            "score_before": plan.score_before,
            "score_planned": plan.score_after}


def migrate(ctx):
    svc = ctx.services
    dest = {m["uuid"]: m["destination"] for m in ctx["moves"]}

    def start(inst):
        return svc.admission.submit("live-migrate", inst["uuid"],
                                    host=dest[inst["uuid"]])[1]
    return {"report": steps.run_children(
        ctx, list(ctx["moves"]), [], live_migrate.KIND, start,
        ("moved", "migrating"))}


def report(ctx):
    after = rebalance.current_score(ctx.services, ctx.params["metric"])
    ctx.progress(f"score {ctx['score_before']:.3f} -> {after:.3f}")
    return {"score_after": after}


def workflow(params):
    return Workflow(KIND, [
        Step("plan", make_plan),
        Step("migrate", migrate),
        Step("report", report),
    ], resume="forward")
