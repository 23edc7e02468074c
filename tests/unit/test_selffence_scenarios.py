"""Self-fencing in simulated time (agent.sim.selffence): each scenario is
a script of faults over the real agent guard and the real LeaseBook, and
checks what the two promises and guarantees 1, 2 and 4 require: the 200
ms sampler never saw a guest run on two hosts, what was destroyed, what
was evacuated (recovery's stand-in acts only on "fenced"), the verdicts
the controller gave, and where every guest runs at the end.

Defaults: lease_time 10 s, renew_interval 2 s, lease_margin 3 s,
peer_timeout 4 s ([ha]'s defaults)."""
import time

import pytest

from agent.sim.selffence import CONTROLLER, SelfFenceWorld

LEASE = 10.0


@pytest.fixture
def world_of():
    made = []

    def make(hosts=("h1", "h2", "h3"), **kwargs):
        world = SelfFenceWorld(hosts, **kwargs)
        made.append(world)
        return world
    yield make
    for world in made:
        world.close()


def standard(world):
    """An HA and a plain guest on each of h1..h3 (vm-hN / plain-hN)."""
    for name in ("h1", "h2", "h3"):
        world.boot(f"vm-{name}", name, ha=True)
        world.boot(f"plain-{name}", name, ha=False)


def runs_once_each(world):
    return {u: world.where_running(u) for u in world.store.instances}


def fence_time(world, name):
    return [t for t, m in world.hosts[name].events
            if m.startswith("fencing this host")]


# -- 1. the isolated host -----------------------------------------------------

def test_isolated_host_fences_within_the_lease_and_is_recovered(world_of):
    w = world_of()
    standard(w)
    w.at(5, lambda w: w.isolate("h1"))
    w.run(40)
    assert w.violations == []
    # It destroyed its HA guest within the lease time of the cut...
    assert w.destroyed_by_fence("h1") == ["HA guest vm-h1 destroyed"]
    assert 5 < fence_time(w, "h1")[0] <= 5 + LEASE
    # ... which ran elsewhere only once lease + margin were over.
    when, source, target = w.evacuated["vm-h1"]
    assert source == "h1" and when >= fence_time(w, "h1")[0] + 3.0
    assert w.states("h1") == ["wait", "fenced"]
    # Its plain guest keeps running; nothing else moved.
    assert w.where_running("plain-h1") == ["h1"]
    assert list(w.evacuated) == ["vm-h1"]


def test_agent_round_just_before_the_lapse_still_fences_in_time(world_of):
    """h1's rounds fall just before each renewal: its lease lapses right
    after a round, so it fences a whole round later, and its guest is gone
    1.8 s after that.  The verdict counts that round (lease_time +
    renew_interval + margin): the guest never runs twice."""
    w = world_of(phases={"h1": 1.95})
    standard(w)
    w.at(5, lambda w: w.isolate("h1"))
    w.run(40)
    assert w.violations == [] and "vm-h1" in w.evacuated
    assert w.evacuated["vm-h1"][0] >= fence_time(w, "h1")[0] + w.destroy_s


def test_link_restored_host_is_reconciled_and_runs_nothing_evacuated(
        world_of):
    w = world_of()
    standard(w)
    w.at(5, lambda w: w.isolate("h1"))
    w.at(40, lambda w: w.rejoin("h1"))
    w.run(60)
    assert w.violations == []
    assert "vm-h1" not in w.hosts["h1"].domains      # undefined there
    assert w.where_running("vm-h1") == [w.evacuated["vm-h1"][2]]
    assert not w.fenced("h1")                         # cleared
    assert any("cleared by the controller" in m
               for _, m in w.hosts["h1"].events)


# -- 2. blips shorter than the lease ------------------------------------------

@pytest.mark.parametrize("phase", [0.0, 0.5, 1.0, 1.5, 1.9])
def test_blip_shorter_than_the_lease_kills_nothing(world_of, phase):
    # The lease counts from the last renewal before the cut: up to one
    # renew_interval before it; a blip of lease_time - renew_interval is
    # the longest that every phase survives.
    w = world_of()
    standard(w)
    cut = 10 + phase
    w.at(cut, lambda w: w.isolate("h1"))
    w.at(cut + LEASE - 2.0 - 0.1, lambda w: w.rejoin("h1"))
    w.run(60)
    assert w.violations == [] and w.evacuated == {}
    assert all(h.events == [] or not fence_time(w, n)
               for n, h in w.hosts.items())
    assert runs_once_each(w) == {u: [i["host"]] for u, i in
                                 w.store.instances.items()}


def test_switch_blip_shorter_than_the_lease_kills_nothing(world_of):
    w = world_of()
    standard(w)
    w.at(10.1, lambda w: w.switch_down())
    w.at(17.9, lambda w: w.switch_up())
    w.run(60)
    assert w.violations == [] and w.evacuated == {}
    assert not any(fence_time(w, n) for n in w.hosts)


# -- 3. the controller alone --------------------------------------------------

def test_controller_outage_of_two_minutes_kills_and_moves_nothing(world_of):
    w = world_of()
    standard(w)
    w.at(5, lambda w: [w.cut_link(CONTROLLER, n) for n in w.hosts])
    w.at(125, lambda w: [w.restore_link(CONTROLLER, n) for n in w.hosts])
    w.run(160)
    assert w.violations == [] and w.evacuated == {}
    assert not any(fence_time(w, n) for n in w.hosts)
    # The controller could ask no one, then everyone reached everyone.
    assert all("fenced" not in w.states(n) for n in w.hosts)
    assert all("controller is away" in w.hosts[n].events[0][1]
               for n in w.hosts)


def test_controller_cut_from_one_host_only_is_alive(world_of):
    w = world_of()
    standard(w)
    w.at(5, lambda w: w.cut_link(CONTROLLER, "h1"))
    w.run(60)
    assert w.states("h1") == ["alive"]
    assert w.evacuated == {} and not fence_time(w, "h1")
    assert w.where_running("vm-h1") == ["h1"]


def test_controller_restart_during_an_isolation_evacuates_nothing(world_of):
    """The new controller knows no grant (it counts from its own start)
    and no HA list the host acknowledged: it cannot be sure what the host
    destroyed, so it evacuates nothing (guarantee 4); the host fenced
    itself all the same, and its guest runs again on it once it is back.
    (Keeping the acknowledged lists in the store would let it recover:
    not built.)"""
    w = world_of()
    standard(w)
    w.at(5, lambda w: w.isolate("h1"))
    w.at(12, lambda w: w.restart_controller())
    w.at(45, lambda w: w.rejoin("h1"))
    w.run(60)
    assert w.violations == [] and w.evacuated == {}
    assert fence_time(w, "h1")
    assert w.where_running("vm-h1") == ["h1"]


# -- 4. the switch outage -----------------------------------------------------

def test_switch_outage_longer_than_the_lease(world_of):
    """Every host cut from every other and from the controller for 60 s.
    Each host sees what an isolated host sees and destroys its HA guests;
    the controller hears no peer ("unknown") and evacuates nothing while
    it lasts.  When the switch returns, each HA guest runs again once:
    restarted on its own host after the reconcile, or (a host whose
    renewal comes after the peers' stale views, which rightly say it
    fenced itself) evacuated; never both."""
    w = world_of()
    standard(w)
    w.at(5, lambda w: w.switch_down())
    w.at(65, lambda w: w.switch_up())
    w.run(100)
    assert w.violations == []
    assert all(fence_time(w, n) for n in w.hosts)
    during = [(t, s) for n in w.hosts for t, s in w.verdicts.get(n, [])
              if t < 65]
    assert {s for _, s in during} == {"wait", "unknown"}
    assert all(t >= 65 for t, _, _ in w.evacuated.values())
    # Non-HA guests were never touched; each HA one runs exactly once.
    assert all(w.where_running(f"plain-{n}") == [n] for n in w.hosts)
    assert all(len(w.where_running(f"vm-{n}")) == 1 for n in w.hosts)
    restarted = sum("started again" in line for _, line in w.log)
    assert restarted + len(w.evacuated) == 3
    assert not any(w.fenced(n) for n in w.hosts)


def test_switch_outage_spares_hosts_with_a_fence_agent(world_of):
    w = world_of(fence_agents=("h2",))
    standard(w)
    w.at(5, lambda w: w.switch_down())
    w.run(40)
    assert w.where_running("vm-h2") == ["h2"]       # empty HA list
    assert w.where_running("vm-h1") == []
    assert w.violations == []


# -- 5. flapping links -------------------------------------------------------

def test_flapping_link_with_short_drops_kills_nothing(world_of):
    w = world_of()
    standard(w)
    for k in range(10):
        w.at(5 + 6 * k, lambda w: w.isolate("h1"))
        w.at(8 + 6 * k, lambda w: w.rejoin("h1"))
    w.run(80)
    assert w.violations == [] and w.evacuated == {}
    assert not fence_time(w, "h1")


def test_flapping_link_with_long_drops_never_runs_a_guest_twice(world_of):
    w = world_of()
    standard(w)
    for k in range(5):
        w.at(5 + 16 * k, lambda w: w.isolate("h1"))
        w.at(19 + 16 * k, lambda w: w.rejoin("h1"))
    w.run(120)
    assert w.violations == []
    assert fence_time(w, "h1")
    # Wherever it ended, each guest runs exactly once.
    assert all(len(where) == 1 for where in runs_once_each(w).values())


# -- 6. clocks ----------------------------------------------------------------

def test_wall_clock_jumps_change_nothing(world_of, monkeypatch):
    """Wall clocks jump an hour either way on every node (and time.time
    itself, in this process): decisions use monotonic clocks only."""
    def outcome(jumps):
        w = world_of()
        standard(w)
        if jumps:
            real = time.time
            offset = {"s": 0.0}
            monkeypatch.setattr(time, "time", lambda: real() + offset["s"])

            def jump(w, s):
                offset["s"] += s
                w.jump_wall(s)
            w.at(3, lambda w: jump(w, 3600))
            w.at(9, lambda w: jump(w, -7200))
        w.at(5, lambda w: w.isolate("h1"))
        w.at(12, lambda w: w.rejoin("h1"))
        w.run(40)
        return w.violations, w.evacuated, [fence_time(w, n)
                                           for n in w.hosts]
    assert outcome(False) == outcome(True) == ([], {}, [[], [], []])


@pytest.mark.parametrize("drift", [-0.01, 0.01])
def test_monotonic_drift_within_the_margin_is_safe(world_of, drift):
    w = world_of(drift={"h1": drift, CONTROLLER: -drift})
    standard(w)
    w.at(5, lambda w: w.isolate("h1"))
    w.run(40)
    assert w.violations == [] and "vm-h1" in w.evacuated


# -- 7. partial partitions ----------------------------------------------------

FIVE = ("h1", "h2", "h3", "h4", "h5")


def test_host_cut_from_controller_and_one_peer_is_alive(world_of):
    w = world_of(FIVE)
    w.boot("vm1", "h1")
    w.at(5, lambda w: [w.cut_link("h1", n) for n in (CONTROLLER, "h2")])
    w.run(60)
    assert not fence_time(w, "h1") and w.evacuated == {}
    assert w.states("h1") == ["alive"]


def test_split_peers_fence_the_host_but_evacuate_nothing(world_of):
    """h1 reaches h4 and h5 only: 2 of 4 peers, no majority, so it fences
    itself; the controller hears 2 peers lost it and 2 reach it: unknown.
    Guarantee 4: nothing is evacuated, the reason is given, and the guest
    runs again on h1 once it is reconciled."""
    w = world_of(FIVE)
    w.boot("vm1", "h1")
    w.at(5, lambda w: [w.cut_link("h1", n)
                       for n in (CONTROLLER, "h2", "h3")])
    w.at(50, lambda w: w.rejoin("h1"))
    w.run(70)
    assert fence_time(w, "h1") and w.evacuated == {}
    assert "unknown" in w.states("h1")
    assert any("split" in line for _, line in w.log)
    assert w.where_running("vm1") == ["h1"] and w.violations == []


def test_two_hosts_isolated_at_once_are_both_recovered(world_of):
    w = world_of(FIVE)
    for name in FIVE:
        w.boot(f"vm-{name}", name)
    w.at(5, lambda w: (w.isolate("h1"), w.isolate("h2")))
    w.run(50)
    assert w.violations == []
    assert sorted(w.evacuated) == ["vm-h1", "vm-h2"]
    assert all(w.evacuated[u][2] in ("h3", "h4", "h5")
               for u in ("vm-h1", "vm-h2"))


def test_minority_side_of_a_partition_fences_majority_side_runs(world_of):
    w = world_of(FIVE)
    for name in FIVE:
        w.boot(f"vm-{name}", name)

    def split(w):
        for a in ("h1", "h2"):
            for b in ("h3", "h4", "h5", CONTROLLER):
                w.cut_link(a, b)
    w.at(5, split)
    w.run(50)
    assert w.violations == []
    assert fence_time(w, "h1") and fence_time(w, "h2")
    assert not any(fence_time(w, n) for n in ("h3", "h4", "h5"))
    assert sorted(w.evacuated) == ["vm-h1", "vm-h2"]


# -- 8. small fleets ---------------------------------------------------------

def test_a_single_host_never_fences_itself(world_of):
    w = world_of(("h1",))
    w.boot("vm1", "h1")
    w.at(5, lambda w: w.isolate("h1"))
    w.run(60)
    assert not fence_time(w, "h1") and w.where_running("vm1") == ["h1"]
    assert w.states("h1") == ["unknown"]


def test_two_hosts_one_isolated(world_of):
    w = world_of(("h1", "h2"))
    w.boot("vm1", "h1")
    w.at(5, lambda w: w.isolate("h1"))
    w.run(40)
    assert w.violations == [] and w.evacuated["vm1"][2] == "h2"


# -- 9. a hung agent ---------------------------------------------------------

def test_hung_agent_with_a_working_network_is_alive(world_of):
    """The agent hangs, sshd answers the peers' probes: "alive", nothing
    moves (the guests may well be running)."""
    w = world_of()
    standard(w)
    w.at(5, lambda w: w.hang_agent("h1"))
    w.run(60)
    assert w.states("h1") == ["alive"] and w.evacuated == {}
    assert w.where_running("vm-h1") == ["h1"]


def test_hung_agent_then_isolated_is_restarted_by_the_watchdog_in_time(
        world_of):
    """Agent hung and host cut together: the systemd watchdog restarts the
    agent (WatchdogSec 5 + RestartSec 1 + start 2 s) and the new agent,
    from its kept lease state, fences on its first round, before the
    controller's verdict."""
    w = world_of()
    standard(w)
    w.at(5, lambda w: (w.hang_agent("h1", watchdog_s=8.0),
                       w.isolate("h1")))
    w.run(45)
    assert w.violations == []
    assert fence_time(w, "h1") and "vm-h1" in w.evacuated


# -- 10. the controller lost first, the peers later ---------------------------

def test_peers_lost_long_after_the_lease_waits_for_the_self_fence(world_of):
    """The lease lapses at 15 s while the peers still answer (alive); h1's
    link goes entirely at 30 s.  The host fences once its peers time out;
    the controller must wait for that (the peers' silence must outlast
    peer_timeout + 2 probe intervals + margin), not for the long-lapsed
    lease alone."""
    w = world_of()
    standard(w)
    w.at(5, lambda w: w.cut_link(CONTROLLER, "h1"))
    w.at(30, lambda w: w.isolate("h1"))
    w.run(60)
    assert w.violations == []
    assert w.states("h1")[0] == "alive" and "fenced" in w.states("h1")
    assert w.evacuated["vm-h1"][0] >= fence_time(w, "h1")[0]


def test_an_ha_guest_booted_after_the_last_renewal_is_not_evacuated(
        world_of):
    """vm-late becomes h1's just before the cut, after its last renewal:
    h1 does not know to destroy it, so recovery, which evacuates only the
    HA instances the host acknowledged, leaves it (it may still run)."""
    w = world_of()
    standard(w)
    w.at(4.5, lambda w: w.boot("vm-late", "h1", ha=True))
    w.at(5, lambda w: w.isolate("h1"))
    w.run(40)
    assert w.where_running("vm-late") == ["h1"]
    assert "vm-late" not in w.evacuated and "vm-h1" in w.evacuated
    assert w.violations == []
