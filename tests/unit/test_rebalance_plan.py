"""The rebalance plan (pure): it lowers the score, respects the
scheduler's filters and server groups, and stops when it should."""
import pytest

from agent.controller.rebalance_plan import Guest, plan, score
from agent.controller.scheduler import HostState, Policy

POLICY = Policy(reserved_host_memory_mb=0, cpu_allocation_ratio=4.0)
FLAVOR = {"vcpus": 1, "ram_mb": 256, "disk_gb": 1, "properties": {}}


def host(name, **kw):
    return HostState(name=name, vcpus=2, memory_mb=4096, disk_gb=100, **kw)


def packed(n=3, cpu=0.5, host_name="a", **kw):
    return [Guest(f"u{i}", f"vm{i}", host_name, FLAVOR, cpu=cpu, **kw)
            for i in range(n)]


def _allocated(hosts, guests):
    by = {h.name: h for h in hosts}
    for g in guests:
        by[g.host].vcpus_alloc += 1
        by[g.host].ram_mb_alloc += 256
        by[g.host].disk_gb_alloc += 1
    return hosts


def test_score_is_zero_when_even_and_weighted_by_capacity():
    assert score({"a": 1, "b": 1}, {"a": 2, "b": 2}) == 0
    # Same fraction on a big and a small host: even.
    assert score({"a": 2, "b": 1}, {"a": 4, "b": 2}) == 0
    assert score({"a": 2, "b": 0}, {"a": 2, "b": 2}) == pytest.approx(0.5)


def test_packed_guests_are_spread_and_the_score_falls():
    guests = packed(3)
    hosts = _allocated([host("a"), host("b"), host("c")], guests)
    p = plan(hosts, guests, {}, POLICY, max_moves=5, threshold=0.01)
    assert len(p.moves) == 2
    assert {m.destination for m in p.moves} == {"b", "c"}
    assert p.score_after < p.score_before
    assert p.score_after == pytest.approx(0.0)
    first = p.moves[0]
    assert first.source_load == (0.75, 0.5)
    assert first.destination_load == (0.0, 0.25)
    assert first.prediction is None
    # The records given are unchanged: the plan changes nothing.
    assert hosts[0].vcpus_alloc == 3 and guests[0].host == "a"


def test_predict_move_is_asked_per_move():
    guests = packed(2)
    hosts = _allocated([host("a"), host("b")], guests)
    asked = []
    p = plan(hosts, guests, {}, POLICY, threshold=0.01,
             predict_move=lambda g, s, d: asked.append((g.name, s, d))
             or "prediction")
    assert asked == [("vm0", "a", "b")]
    assert p.moves[0].prediction == "prediction"


def test_under_threshold_plans_nothing():
    guests = packed(1, cpu=0.1)
    hosts = _allocated([host("a"), host("b")], guests)
    p = plan(hosts, guests, {}, POLICY, threshold=0.5)
    assert p.moves == () and "threshold" in p.reason


def test_max_moves_is_honoured():
    guests = packed(4)
    hosts = _allocated([host("a"), host("b"), host("c")], guests)
    p = plan(hosts, guests, {}, POLICY, threshold=0.0, max_moves=1)
    assert len(p.moves) == 1 and "max-moves" in p.reason


def test_disabled_down_and_other_zone_hosts_take_nothing():
    guests = packed(2, zone="z1")
    hosts = _allocated([host("a", availability_zone="z1"),
                        host("b", enabled=False, availability_zone="z1"),
                        host("c", up=False, availability_zone="z1"),
                        host("d", availability_zone="z2")], guests)
    p = plan(hosts, guests, {}, POLICY, threshold=0.0)
    assert p.moves == ()
    assert p.reason == "no move lowers the score further"


def test_capacity_is_respected():
    guests = packed(3)
    full = host("b", ram_mb_alloc=4096 - 100)
    hosts = _allocated([host("a"), full], guests)
    assert plan(hosts, guests, {}, POLICY, threshold=0.0).moves == ()


def test_anti_affinity_is_kept_while_planning():
    # Two group members on a; b holds a member too: only c may take one.
    group = {"web": {"name": "web", "policy": "anti-affinity", "rules": {}}}
    guests = [Guest("u0", "vm0", "a", FLAVOR, cpu=0.9, group="web"),
              Guest("u1", "vm1", "a", FLAVOR, cpu=0.9),
              Guest("u2", "vm2", "b", FLAVOR, cpu=0.0, group="web",
                    movable=False)]
    hosts = _allocated([host("a"), host("b"), host("c")], guests)
    p = plan(hosts, guests, group, POLICY, threshold=0.0)
    dest = {m.name: m.destination for m in p.moves}
    assert dest.get("vm0") in (None, "c")
    assert "vm2" not in dest


def test_affinity_members_do_not_leave_their_group():
    group = {"db": {"name": "db", "policy": "affinity", "rules": {}}}
    guests = [Guest("u0", "vm0", "a", FLAVOR, cpu=0.9, group="db"),
              Guest("u1", "vm1", "a", FLAVOR, cpu=0.9, group="db")]
    hosts = _allocated([host("a"), host("b")], guests)
    assert plan(hosts, guests, group, POLICY, threshold=0.0).moves == ()


def test_bad_metric_is_refused():
    with pytest.raises(ValueError):
        plan([], [], {}, POLICY, metric="disk")
