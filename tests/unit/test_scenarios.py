"""Scenarios on the simulated fleet that read like a script (after
Proxmox's HA simulator tests): a list of commands and events, then the
tables expected after them.

Commands: an operation on an instance (``boot``, ``migrate``, ``resize``,
``confirm``, ``revert``, ``live``, ``delete``, ``stop``, ``start``:
``(verb, name, params)``); a fault or repair on a host (``power_off``,
``power_on``, ``cut``, ``restore``, ``crash_agent``, ``restart_agent``,
``fill_disk``, ``free_disk``: ``(event, host)``); ``("at_step", step,
command)`` to run a command when a task reaches that step;
``("restart_controller",)``, ``("periodic",)`` and ``("heal",)``.

Expected: any of the tables ``log`` (each operation's verb, instance and
task outcome, in order; "crashed" when the controller died in it),
``instances`` (name, host, status, task_state), ``migrations`` (instance,
type, status, source, destination), ``claims`` (host, consumer, vCPUs,
RAM; a migration's claim is ``mig:<instance>``), ``domains`` (instance,
host, state), ``directories`` (storage namespace, instance[_resize]) and
``audit`` (the kinds of its findings).
"""
import pytest

from agent.sim.fleet import ControllerCrash
from sim_helpers import VERBS, SimLab

HOST_EVENTS = ("power_off", "power_on", "cut", "restore", "crash_agent",
               "restart_agent", "fill_disk", "free_disk")


def _crash(fleet):
    raise ControllerCrash()


def run(lab, commands):
    """Run ``commands``; returns the log of operations."""
    log = []
    for command in commands:
        _one(lab, command, log)
    return log


def _one(lab, command, log):
    what, *args = command
    if what == "boot" or what in VERBS:
        name, params = args[0], (args[1] if len(args) > 1 else {})
        task = lab.boot(name, **params) if what == "boot" else \
            lab.op(what, name, **params)
        log.append((what, name, task["state"] if task else "crashed"))
    elif what in HOST_EVENTS:
        getattr(lab.fleet, what)(args[0])
    elif what == "at_step":
        step, then = args
        lab.fleet.at_step(step, _crash if then == ("controller_crash",)
                          else lambda f: _one(lab, then, log))
    elif what == "restart_controller":
        lab.restart_controller()
    elif what == "periodic":
        lab.periodic()
    elif what == "heal":
        lab.fleet.heal()
    else:
        raise ValueError(f"unknown scenario command {what!r}")


def tables(lab, log):
    return {"log": log, "instances": lab.instances(),
            "migrations": lab.migrations(), "claims": lab.claims(),
            "domains": lab.domains(), "directories": lab.directories(),
            "audit": sorted(f["kind"] for f in lab.audit())}


SCENARIOS = {
    "migrate_then_confirm": (
        [("boot", "vm1", {"host": "h1"}),
         ("migrate", "vm1", {"host": "h2"}),
         ("confirm", "vm1")],
        {"log": [("boot", "vm1", "done"), ("migrate", "vm1", "done"),
                 ("confirm", "vm1", "done")],
         "instances": [("vm1", "h2", "ACTIVE", None)],
         "migrations": [("vm1", "migration", "confirmed", "h1", "h2")],
         "claims": [("h2", "vm1", 1, 256)],
         "domains": [("vm1", "h2", "running")],
         "directories": [("local/h2", "vm1")],
         "audit": []}),

    "controller_dies_mid_copy_and_resumes": (
        [("boot", "vm1", {"host": "h1"}),
         ("at_step", "copy", ("controller_crash",)),
         ("resize", "vm1", {"flavor": "big", "host": "h2"}),
         ("restart_controller",)],
        {"log": [("boot", "vm1", "done"), ("resize", "vm1", "crashed")],
         "instances": [("vm1", "h2", "VERIFY_RESIZE", None)],
         "migrations": [("vm1", "resize", "finished", "h1", "h2")],
         "claims": [("h1", "vm1", 1, 256), ("h2", "mig:vm1", 2, 512)],
         "domains": [("vm1", "h1", "shutoff"), ("vm1", "h2", "running")],
         "directories": [("local/h1", "vm1_resize"), ("local/h2", "vm1")],
         "audit": []}),

    "source_agent_restarts_during_the_copy": (
        [("boot", "vm1", {"host": "h1"}),
         ("at_step", "disk", ("crash_agent", "h1")),
         ("at_step", "disk", ("restart_agent", "h1")),
         ("migrate", "vm1", {"host": "h2"}),
         ("revert", "vm1")],
        {"log": [("boot", "vm1", "done"), ("migrate", "vm1", "done"),
                 ("revert", "vm1", "done")],
         "instances": [("vm1", "h1", "ACTIVE", None)],
         "claims": [("h1", "vm1", 1, 256)],
         "domains": [("vm1", "h1", "running")],
         "directories": [("local/h1", "vm1")],
         "audit": []}),

    "destination_disk_full_then_freed": (
        [("boot", "vm1", {"host": "h1"}),
         ("fill_disk", "h2"),
         ("migrate", "vm1", {"host": "h2"}),
         ("free_disk", "h2"),
         ("migrate", "vm1", {"host": "h2"})],
        {"log": [("boot", "vm1", "done"), ("migrate", "vm1", "failed"),
                 ("migrate", "vm1", "done")],
         "instances": [("vm1", "h2", "VERIFY_RESIZE", None)],
         "migrations": [("vm1", "migration", "error", "h1", "h2"),
                        ("vm1", "migration", "finished", "h1", "h2")],
         "claims": [("h1", "vm1", 1, 256), ("h2", "mig:vm1", 1, 256)],
         "audit": []}),

    "power_loss_stops_the_guest_until_started": (
        [("boot", "vm1", {"host": "h1"}),
         ("power_off", "h1"),
         ("periodic",),
         ("power_on", "h1"),
         ("periodic",),
         ("start", "vm1")],
        {"log": [("boot", "vm1", "done"), ("start", "vm1", "done")],
         "instances": [("vm1", "h1", "ACTIVE", None)],
         "domains": [("vm1", "h1", "running")],
         "audit": []}),

    "live_migration_aborted_by_a_source_agent_restart": (
        [("boot", "vm1", {"host": "h1"}),
         ("at_step", "monitor", ("crash_agent", "h1")),
         ("at_step", "monitor", ("restart_agent", "h1")),
         ("live", "vm1", {"host": "h2"})],
        {"log": [("boot", "vm1", "done"), ("live", "vm1", "failed")],
         "instances": [("vm1", "h1", "ACTIVE", None)],
         "migrations": [("vm1", "live-migration", "failed", "h1", "h2")],
         "claims": [("h1", "vm1", 1, 256)],
         "domains": [("vm1", "h1", "running")],
         "directories": [("local/h1", "vm1")],
         "audit": []}),

    "shared_storage_live_migration_and_back": (
        [("boot", "vm1", {"host": "h1", "storage": "shared"}),
         ("live", "vm1", {"host": "h2"}),
         ("live", "vm1", {"host": "h1"})],
        {"log": [("boot", "vm1", "done"), ("live", "vm1", "done"),
                 ("live", "vm1", "done")],
         "instances": [("vm1", "h1", "ACTIVE", None)],
         "claims": [("h1", "vm1", 1, 256)],
         "domains": [("vm1", "h1", "running")],
         "directories": [("shared", "vm1")],
         "audit": []}),

    "delete_while_waiting_for_confirm": (
        [("boot", "vm1", {"host": "h1"}),
         ("boot", "vm2", {"host": "h2"}),
         ("resize", "vm1", {"flavor": "big", "host": "h2"}),
         ("delete", "vm1")],
        {"log": [("boot", "vm1", "done"), ("boot", "vm2", "done"),
                 ("resize", "vm1", "done"), ("delete", "vm1", "done")],
         "instances": [("vm2", "h2", "ACTIVE", None)],
         "claims": [("h2", "vm2", 1, 256)],
         "domains": [("vm2", "h2", "running")],
         "directories": [("local/h2", "vm2")],
         "audit": []}),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario(tmp_path, name):
    commands, expected = SCENARIOS[name]
    lab = SimLab(tmp_path)
    try:
        got = tables(lab, run(lab, commands))
        assert {k: got[k] for k in expected} == expected
    finally:
        lab.close()
