"""The agent's lease (monotonic, kept across restarts) and the agent's
half of the self-fence rule."""
import json

from agent.host.lease import Lease, should_fence


class Clock:
    def __init__(self, now=500.0):
        self.now = now

    def __call__(self):
        return self.now


PEERS = [{"name": "h2", "address": "198.18.0.12"},
         {"name": "h3", "address": "198.18.0.13"}]


def test_never_granted_never_lapses():
    clock = Clock()
    lease = Lease(clock=clock, boot_id="b")
    clock.now += 1e6
    assert lease.lapsed_for() is None
    assert not should_fence(lease.lapsed_for(), [], 2).fence


def test_lease_lasts_lease_time_from_the_renewal():
    clock = Clock()
    lease = Lease(clock=clock, boot_id="b")
    lease.renew(10.0, PEERS, ["vm1"])
    clock.now += 9.9
    assert lease.lapsed_for() is None
    clock.now += 0.2
    assert abs(lease.lapsed_for() - 0.1) < 1e-9


def test_fence_needs_lapse_and_no_majority():
    assert should_fence(0.5, [], 2).fence
    assert should_fence(0.5, ["h2"], 4).fence          # 1 < 3
    assert not should_fence(None, [], 2).fence         # lease holds
    assert not should_fence(0.5, ["h2", "h3"], 3).fence


def test_one_peer_of_two_is_not_a_majority():
    # Two peers: both are needed; with one, this host may be the one cut.
    assert should_fence(0.5, ["h2"], 2).fence


def test_a_host_without_peers_never_fences_itself():
    d = should_fence(100.0, [], 0)
    assert not d.fence and "controller is away" in d.reason


def test_fenced_stays_until_cleared_renewals_or_not():
    clock = Clock()
    lease = Lease(clock=clock, boot_id="b")
    lease.renew(10.0, PEERS, ["vm1"])
    lease.mark_fenced("isolated", ["vm1"])
    assert lease.renew(10.0, PEERS, ["vm1"])["fenced"] is True
    assert lease.clear() is True
    assert lease.status()["fenced"] is False and lease.clear() is False


def test_state_survives_an_agent_restart(tmp_path):
    path = str(tmp_path / "lease.json")
    clock = Clock()
    lease = Lease(clock=clock, state_path=path, boot_id="b")
    lease.renew(10.0, PEERS, ["vm1"])
    lease.mark_fenced("isolated", ["vm1"])
    again = Lease(clock=clock, state_path=path, boot_id="b")
    assert again.status()["fenced"] and again.ha_instances == ["vm1"]
    assert again.peers == PEERS and again.expires == lease.expires


def test_after_a_reboot_the_lease_is_over(tmp_path):
    path = str(tmp_path / "lease.json")
    clock = Clock(1e6)
    Lease(clock=clock, state_path=path, boot_id="b1").renew(10.0, PEERS, [])
    clock.now = 5.0         # a new boot: monotonic started again
    again = Lease(clock=clock, state_path=path, boot_id="b2")
    assert again.lapsed_for() is not None


def test_a_broken_state_file_is_no_lease(tmp_path):
    path = tmp_path / "lease.json"
    path.write_text("{not json")
    assert Lease(clock=Clock(), state_path=str(path),
                 boot_id="b").lapsed_for() is None


def test_the_state_file_is_json_with_the_ha_list(tmp_path):
    path = tmp_path / "lease.json"
    Lease(clock=Clock(), state_path=str(path),
          boot_id="b").renew(10.0, PEERS, ["vm1", "vm2"])
    assert json.loads(path.read_text())["ha_instances"] == ["vm1", "vm2"]
