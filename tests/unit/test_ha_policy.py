"""Which instances are HA, in which order they are recovered, and the
recovery's pure decisions (agent.controller.ha_policy, .recovery,
.ops.recover_host)."""
import pytest

from agent.conf import CONF
from agent.controller import ha_policy, recovery
from agent.controller.ops import recover_host
from agent.controller.scheduler import filters
from agent.controller.scheduler.hoststate import Request
from ha_sim_helpers import Verdict


@pytest.mark.parametrize("inst, flavor, default, want", [
    ({}, {}, False, False),
    ({}, {}, True, True),
    ({"ha": "true"}, {}, False, True),
    ({}, {"ha": "True"}, False, True),
    ({"ha": "false"}, {"ha": "true"}, True, False),   # the instance wins
    ({"ha": "maybe"}, {"ha": "yes"}, False, True),    # says nothing
    ({}, {"ha": "0"}, True, False),                   # flavor over default
])
def test_decide_ha(inst, flavor, default, want):
    assert ha_policy.decide_ha(inst, flavor, default) is want


def test_priority_instance_then_flavor_then_zero():
    assert ha_policy.decide_priority({"ha_priority": "7"},
                                     {"ha_priority": "3"}) == 7
    assert ha_policy.decide_priority({"ha_priority": "x"},
                                     {"ha_priority": "3"}) == 3
    assert ha_policy.decide_priority({}, {}) == 0


def _inst(name, ha=None, prio=None, flavor_props=None):
    meta = {}
    if ha is not None:
        meta["ha"] = ha
    if prio is not None:
        meta["ha_priority"] = str(prio)
    return {"name": name, "guest_metadata": meta, "flavor_id": None,
            "flavor": {"properties": flavor_props or {}}}


def test_is_ha_reads_the_flavor_snapshot_without_a_store():
    assert ha_policy.is_ha(None, _inst("a", flavor_props={"ha": "true"}))
    assert not ha_policy.is_ha(None, _inst("b"))
    assert ha_policy.ha_priority(None, _inst("c", prio=4)) == 4


def test_recovery_order_groups_by_priority_highest_first():
    insts = [_inst("low", "true", 1), _inst("plain"),
             _inst("top", "true", 9), _inst("zero", "true"),
             _inst("top2", "true", 9)]
    order = ha_policy.recovery_order(None, insts)
    assert [[i["name"] for i in g] for g in order] == \
        [["top", "top2"], ["low"], ["zero"]]


def test_scheduler_does_not_ask_hosts_for_ha_keys():
    class Host:
        metadata = {}
    ha_only = Request(1, 256, 1, properties={"ha": "true",
                                             "ha_priority": "5"})
    assert filters.aggregate_extra_specs(Host, ha_only, None) is None
    ssd = Request(1, 256, 1, properties={"ssd": "true", "ha": "true"})
    assert filters.aggregate_extra_specs(Host, ssd, None) == \
        "no aggregate metadata ssd"


# -- recovery decisions -------------------------------------------------------

HOST = {"name": "h1", "state": "down", "forced_down": False}


@pytest.mark.parametrize("silent, has_ha, recovering, grace, want", [
    (5, True, False, 0, None),             # not yet lease_time
    (12, True, False, 30, None),           # startup grace
    (12, True, True, 0, None),             # already recovering
    (12, False, False, 0, None),           # nothing HA on it
    (12, True, False, 0, "recover"),
])
def test_host_verdict(silent, has_ha, recovering, grace, want):
    what, why = recovery.host_verdict(HOST, silent, 10.0, has_ha,
                                      recovering, grace)
    assert what == want and why


def test_guest_action_restart_then_relocate_then_give_up():
    assert recovery.guest_action(0, 0, 1, 1) == recovery.RESTART
    assert recovery.guest_action(1, 0, 1, 1) == recovery.RELOCATE
    assert recovery.guest_action(1, 1, 1, 1) == recovery.GIVE_UP
    assert recovery.guest_action(0, 0, 0, 0) == recovery.GIVE_UP


def test_attempts_count_in_the_window_since_the_operator_started_it():
    acts = [{"action": "ha-restart", "start_time": "2026-12-01T08:00:00Z"},
            {"action": "ha-restart", "start_time": "2026-12-01T10:00:00Z"},
            {"action": "ha-relocate", "start_time": "2026-12-01T10:01:00Z"}]
    assert recovery.attempts(acts, "2026-12-01T09:00:00Z") == (1, 1)
    acts.append({"action": "start", "start_time": "2026-12-01T10:02:00Z"})
    assert recovery.attempts(acts, "2026-12-01T09:00:00Z") == (0, 0)


def test_fence_path_and_reasons():
    assert recover_host.fence_path({"fence_agent": "fence_x"}, True) == \
        "agent"
    assert recover_host.fence_path({"fence_agent": None}, True) == "lease"
    assert recover_host.fence_path({"fence_agent": None}, False) is None
    assert "nothing is evacuated" in recover_host.no_fence_reason("h1")
    why = recover_host.verdict_reason("h1", Verdict("alive", ""))
    assert "peers still reach it" in why and "nothing is evacuated" in why


def test_startup_grace_covers_a_lease():
    """The default grace is longer than one lease and its margin: a host
    that was fine before the controller started has answered by then."""
    assert CONF.ha.startup_grace >= CONF.ha.lease_time + \
        CONF.ha.lease_margin
