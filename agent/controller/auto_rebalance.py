"""Automatic rebalancing ([rebalance] enabled; off by default).

Every [rebalance] interval seconds a round computes the rebalance plan
(agent.controller.rebalance).  A round is *imbalanced* when the score is
above [rebalance] threshold and the plan has moves.  Proxmox 5.2's rule
against flapping: nothing moves until hold_rounds consecutive rounds were
imbalanced; a balanced round sets the count back to 0, and so does a
round that acts, so that the next action again needs hold_rounds rounds
of imbalance measured after the last moves landed (the load of a guest
is known again one poll after it arrives).  A round also does nothing
while a rebalance task runs (one at a time, admission.submit_fleet).
``hold`` is the pure decision; ``Rebalancer`` the periodic edge.
"""
import dataclasses
import logging
import threading
import time

from agent.common.errors import DroverError
from agent.conf import CONF
from agent.controller import rebalance

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Verdict:
    rounds: int         # consecutive imbalanced rounds, this one included
    act: bool
    reason: str


def hold(rounds, score, threshold, planned_moves, hold_rounds):
    """The decision of one round, given the imbalanced ``rounds`` before
    it, this round's ``score`` and the number of moves planned."""
    if score <= threshold or not planned_moves:
        why = (f"score {score:.3f} at or under {threshold:g}"
               if score <= threshold else "no move would lower the score")
        return Verdict(0, False, why)
    rounds += 1
    if rounds < hold_rounds:
        return Verdict(rounds, False, f"imbalanced {rounds}/{hold_rounds} "
                       "rounds: holding")
    return Verdict(0, True, f"imbalanced {rounds} rounds: rebalancing "
                   f"({planned_moves} move(s))")


class Rebalancer:
    """One round at a time: ``round()`` plans and, when ``hold`` says so,
    submits the ``rebalance`` task."""

    def __init__(self, svc, conf=CONF, plan=rebalance.current_plan):
        self.svc, self.conf, self.plan = svc, conf, plan
        self.rounds = 0
        self.last = None
        self.last_at = None     # wall-clock time of the last round
        self.task_id = None     # the last rebalance task a round started

    def round(self):
        opts = self.conf.rebalance
        for task in self.svc.store.list_tasks(unfinished=True):
            if task["kind"] == "rebalance":
                self.last = Verdict(self.rounds, False,
                                    f"rebalance task {task['id']} running")
                self.last_at = time.time()
                return self.last
        plan = self.plan(self.svc, opts.metric, opts.threshold,
                         opts.max_moves)
        verdict = hold(self.rounds, plan.score_before, opts.threshold,
                       len(plan.moves), opts.hold_rounds)
        self.rounds = verdict.rounds
        if verdict.act:
            try:
                task_id = self.svc.admission.submit_fleet(
                    "rebalance", metric=opts.metric,
                    threshold=opts.threshold, max_moves=opts.max_moves,
                    max_parallel=opts.max_parallel)
                self.task_id = task_id
                LOG.info("automatic rebalance: task %s: %s", task_id,
                         verdict.reason)
            except DroverError as err:
                verdict = Verdict(0, False, f"{verdict.reason}; not "
                                  f"started: {err}")
        self.last, self.last_at = verdict, time.time()
        LOG.info("automatic rebalance round: %s", verdict.reason)
        return verdict

    def status(self):
        """What the last round decided, and why."""
        opts = self.conf.rebalance
        last = self.last
        return {"enabled": True, "interval": opts.interval,
                "threshold": opts.threshold, "hold_rounds": opts.hold_rounds,
                "rounds": self.rounds,
                "last_round_at": self.last_at,
                "last_reason": last.reason if last else "no round yet",
                "last_acted": bool(last and last.act),
                "last_task_id": self.task_id}


def start(svc, conf=CONF):
    """Run rounds every [rebalance] interval in a daemon thread, when
    [rebalance] enabled; returns the Rebalancer or None."""
    if not conf.rebalance.enabled:
        return None
    rebalancer = Rebalancer(svc, conf)

    def loop():
        while True:
            threading.Event().wait(conf.rebalance.interval)
            try:
                rebalancer.round()
            except Exception:       # must outlive any one failure
                LOG.exception("automatic rebalance round failed")
    threading.Thread(target=loop, name="rebalance", daemon=True).start()
    return rebalancer
