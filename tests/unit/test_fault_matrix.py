"""The fault matrix: every step of boot, cold migration, resize, resize
confirm, resize revert and live migration (block and shared storage),
crossed with each fault, injected as the step starts, on the simulated
fleet.

Then the world heals where that is realistic (a host powered back on
returns with its guests shut off; the network comes back; a crashed agent
restarts; a restarted controller resumes its tasks), the periodic jobs
run, and the outcome is judged (sim_helpers.SimLab.judge): the audit
finds nothing, the guest is defined only where the database says (and
its migrations in progress) and runs in one place at most, its data is
in its directory, claims match, no task is left unfinished and the
instance is not left busy.

Steps are read from each workflow's own step list, so the matrix follows
the workflows.  A case that ends inconsistent because of a workflow bug
is a strict xfail with its reason (KNOWN); the table of the run is
printed at the end (conftest.py).
"""
import itertools

import pytest

from agent.controller.ops import WORKFLOWS
from agent.sim.fleet import ControllerCrash
from sim_helpers import SimLab

SRC, DST = "h1", "h2"

# workflow label -> (task kind, storage, what runs before, the operation)
WORKFLOW_CASES = {
    "boot": ("boot", "local", [], None),
    "cold_migrate": ("cold_migrate", "local", [], ("migrate", {"host": DST})),
    "resize": ("resize", "local", [],
               ("resize", {"host": DST, "flavor": "big"})),
    "resize_confirm": ("resize_confirm", "local",
                       [("resize", {"host": DST, "flavor": "big"})],
                       ("confirm", {})),
    "resize_revert": ("resize_revert", "local",
                      [("resize", {"host": DST, "flavor": "big"})],
                      ("revert", {})),
    "live_block": ("live_migrate", "local", [], ("live", {"host": DST})),
    "live_shared": ("live_migrate", "shared", [], ("live", {"host": DST})),
}


def _crash(fleet):
    raise ControllerCrash()


def _agent_restart(fleet):
    """The source agent restarts (systemd) between the step's first call
    to it and the next: the jobs it ran are lost, its domains stay."""
    seen = []

    def watch(f, host, method):
        if host != SRC:
            return False
        if not seen:
            seen.append(method)
            return False
        f.crash_agent(SRC)
        f.restart_agent(SRC)
        return True
    fleet.before_calls(watch)


# fault -> what happens as the step starts: fn(fleet, step)
FAULTS = {
    "power_src": lambda f, s: f.power_off(SRC),
    "power_dst": lambda f, s: f.power_off(DST),
    "cut_src": lambda f, s: f.cut(SRC),
    "cut_dst": lambda f, s: f.cut(DST),
    "agent_crash_src": lambda f, s: _agent_restart(f),
    "controller_restart": lambda f, s: _crash(f),
    "disk_full_dst": lambda f, s: f.fill_disk(DST),
    "libvirt_error": lambda f, s: f.fail_next_call(step=s),
}
# After the step's work, before the store records it.
AFTER_WORK = {"controller_restart_after_work": _crash}
# Boot has one host, the "source".
BOOT = {"power_dst": "power_src", "cut_dst": "cut_src",
        "disk_full_dst": "disk_full_src"}
BOOT_ONLY = {"disk_full_src": lambda f, s: f.fill_disk(SRC)}

# Inconsistent outcomes, by cause: (tag, workflows, steps, faults, why).  Each
# is a workflow bug to fix; the cases are strict xfails, so a fixed case
# must leave this list.  None is known today.
INCONSISTENT = []


def _steps(kind):
    return [s.name for s in WORKFLOWS[kind]({"uuid": "x"}).steps]


def _faults(label):
    names = list(FAULTS) + list(AFTER_WORK)
    if label == "boot":
        names = list(dict.fromkeys(BOOT.get(n, n) for n in names))
    return names


def _cases():
    for label, (kind, *_rest) in WORKFLOW_CASES.items():
        for step in _steps(kind):
            for fault in _faults(label):
                yield label, step, fault


CASES = list(_cases())


def _arm(lab, kind, step, fault):
    if fault in AFTER_WORK:
        lab.fleet.at_step(step, AFTER_WORK[fault], kind=kind, when="done")
        return
    inject = FAULTS.get(fault) or BOOT_ONLY[fault]
    lab.fleet.at_step(step, lambda f: inject(f, step), kind=kind)


_READY = {}


def _ready(tmp_path_factory, label):
    """The fleet and store just before the operation of ``label`` (built
    once per workflow)."""
    if label not in _READY:
        _kind, storage, before, _op = WORKFLOW_CASES[label]
        path = tmp_path_factory.mktemp(f"ready-{label}")
        lab = SimLab(path)
        try:
            if label != "boot":
                assert lab.boot("vm1", host=SRC,
                                storage=storage)["state"] == "done"
                for verb, params in before:
                    assert lab.op(verb, "vm1", **params)["state"] == "done"
            _READY[label] = (lab.snapshot(path / "ready.db"),
                             lab.guests_with_data())
        finally:
            lab.close()
    return _READY[label]


def run_case(tmp_path, ready, label, step, fault):
    """The problems left after the case, [] if consistent."""
    kind, storage, _before, operation = WORKFLOW_CASES[label]
    snapshot, had_data = ready
    lab = SimLab(tmp_path, snapshot=snapshot)
    try:
        _arm(lab, kind, step, fault)
        if label == "boot":
            lab.boot("vm1", host=SRC, storage=storage)
        else:
            verb, params = operation
            lab.op(verb, "vm1", **params)
        if lab.fleet.pending_hooks():
            return ["the fault was never injected: step not reached"]
        lab.fleet.heal()
        if lab.crashed:
            lab.restart_controller()
        lab.periodic()
        return lab.judge(had_data)
    finally:
        lab.close()


def _known():
    known = {}
    for tag, workflows, steps, faults, why in INCONSISTENT:
        for case in itertools.product(workflows, steps, faults):
            if case in CASES:
                known[case] = (tag, why)
    return known


KNOWN = _known()


def _param(case):
    marks = ()
    if case in KNOWN:
        marks = pytest.mark.xfail(strict=True, reason=KNOWN[case][0])
    return pytest.param(*case, id="-".join(case), marks=marks)


@pytest.mark.parametrize("label, step, fault", [_param(c) for c in CASES])
def test_fault_leaves_a_consistent_fleet(tmp_path, tmp_path_factory,
                                         fault_matrix, label, step, fault):
    problems = run_case(tmp_path, _ready(tmp_path_factory, label), label,
                        step, fault)
    fault_matrix.append((label, step, fault, problems,
                         KNOWN.get((label, step, fault))))
    assert problems == []
