"""The agent's guard: fences only on lapse + no majority, destroys only
HA guests, refuses starts until cleared, says every decision."""
import pytest

from agent.common.errors import Conflict, DroverError
from agent.host.lease import Lease
from agent.host.peers import Peers
from agent.host.self_fence import SelfFence

PEERS = [{"name": "h2", "address": "a2"}, {"name": "h3", "address": "a3"}]


class Clock:
    now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def host():
    class Host:
        clock = Clock()
        up = {"a2": True, "a3": True}
        running = {"ha1": True, "ha2": True, "plain": True}
        events = []

        def destroy(self, uuid):
            was = self.running.get(uuid, False)
            self.running[uuid] = False
            return was
    h = Host()
    h.guard = SelfFence(
        Lease(clock=h.clock, boot_id="b"),
        Peers(lambda a: h.up[a], clock=h.clock, workers=1), h.destroy,
        peer_timeout=4.0, interval=2.0, clock=h.clock,
        publish=lambda e, d: h.events.append(d["message"]))
    h.guard.lease_renew(10.0, PEERS, ["ha1", "ha2"])
    return h


def run(host, seconds):
    for _ in range(int(seconds / 2)):
        host.clock.now += 2
        host.guard.tick()


def test_isolated_host_destroys_only_its_ha_guests(host):
    host.up.update(a2=False, a3=False)
    run(host, 12)
    assert host.running == {"ha1": False, "ha2": False, "plain": True}
    assert host.guard.lease.status()["destroyed"] == ["ha1", "ha2"]
    assert any(m.startswith("fencing this host") for m in host.events)


def test_controller_lost_but_peers_reached_fences_nothing(host):
    run(host, 30)           # no renewal for 30 s, peers answer
    assert all(host.running.values())
    said = [m for m in host.events if m.startswith("not fencing")]
    assert len(said) == 1 and "controller is away" in said[0]


def test_peers_lost_while_the_lease_holds_fences_nothing(host):
    host.up.update(a2=False, a3=False)
    run(host, 8)
    assert all(host.running.values())


def test_fenced_host_refuses_starts_until_cleared(host):
    host.up.update(a2=False, a3=False)
    run(host, 12)
    with pytest.raises(Conflict, match="fenced itself"):
        host.guard.check_start("ha1")
    host.up.update(a2=True, a3=True)
    assert host.guard.lease_renew(10.0, PEERS, ["ha1"])["fenced"] is True
    run(host, 4)
    with pytest.raises(Conflict):
        host.guard.check_start("ha1")       # renewed is not reconciled
    host.guard.lease_clear()
    host.guard.check_start("ha1")


def test_an_ha_guest_started_while_fenced_is_destroyed_again(host):
    host.up.update(a2=False, a3=False)
    run(host, 12)
    host.running["ha1"] = True      # started behind drover's back
    run(host, 2)
    assert host.running["ha1"] is False


def test_a_failed_destroy_is_retried(host):
    calls = []

    def flaky(uuid):
        calls.append(uuid)
        if len(calls) == 1:
            raise DroverError("libvirt: timed out")
        return host.destroy(uuid)
    host.guard.destroy = flaky
    host.up.update(a2=False, a3=False)
    run(host, 14)
    assert host.running["ha1"] is False and host.running["ha2"] is False


def test_healthy_only_while_the_guard_runs(host):
    assert not host.guard.healthy()
    host.guard.tick()
    assert host.guard.healthy()
    host.clock.now += 60
    assert not host.guard.healthy()


def test_a_host_without_ha_guests_has_nothing_to_fence(host):
    host.guard.lease_renew(10.0, PEERS, [])
    host.up.update(a2=False, a3=False)
    run(host, 14)
    assert all(host.running.values()) and not host.guard.lease.fenced
    host.guard.check_start("plain")             # not refused
    assert [m for m in host.events if "no HA guests" in m] != []
