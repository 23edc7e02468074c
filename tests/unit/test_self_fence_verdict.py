"""The controller's verdict on a host without power management: every
branch of agent.controller.self_fence.self_fence_verdict."""
import pytest

from agent.controller.self_fence import (
    ALIVE, FENCED, UNKNOWN, WAIT, Verdict, isolation_s, majority,
    self_fence_verdict)

LEASE, MARGIN, TIMEOUT, PROBE = 10.0, 3.0, 4.0, 2.0
LOST = isolation_s(TIMEOUT, PROBE, MARGIN)      # 11 s


def verdict(views, now=100.0, granted=80.0, count=None):
    return self_fence_verdict(now, granted, LEASE, MARGIN, views,
                              len(views) if count is None else count,
                              peer_timeout=TIMEOUT, probe_interval=PROBE)


def test_majority_is_more_than_half():
    assert [majority(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]


def test_fenced_when_lease_and_margin_over_and_a_majority_lost_it():
    v = verdict({"h2": LOST, "h3": LOST + 5})
    assert v.state == FENCED and "2 of 2 peers" in v.reason


def test_a_majority_is_enough_one_peer_may_still_reach_it():
    # It reaches 1 of 4 peers, fewer than 3: by its own rule it fenced.
    v = verdict({"h2": 1.0, "h3": LOST, "h4": LOST, "h5": LOST})
    assert v.state == FENCED


def test_alive_when_a_majority_of_peers_still_reach_it():
    # Lease long over: the fault is between controller and host.
    v = verdict({"h2": 0.5, "h3": 1.5, "h4": LOST}, now=1000.0)
    assert v.state == ALIVE and "h2, h3" in v.reason


def test_wait_while_lease_round_and_margin_are_not_over():
    # The agent checks once per probe round: a round more than the lease.
    v = verdict({"h2": LOST, "h3": LOST},
                now=80.0 + LEASE + PROBE + MARGIN - 0.1)
    assert v.state == WAIT and "lease" in v.reason
    assert verdict({"h2": LOST, "h3": LOST},
                   now=80.0 + LEASE + PROBE + MARGIN).state == FENCED


def test_the_margin_counts_not_only_the_lease():
    assert verdict({"h2": LOST, "h3": LOST},
                   now=80.0 + LEASE + 1).state == WAIT


def test_wait_while_the_peers_lost_it_too_recently():
    # Lost for more than peer_timeout but it may not have fenced yet.
    v = verdict({"h2": LOST - 0.1, "h3": LOST})
    assert v.state == WAIT and "not yet" in v.reason


def test_unknown_when_too_few_peers_answer_the_controller():
    v = verdict({"h2": LOST}, count=4)
    assert v.state == UNKNOWN and "1 of 4" in v.reason


def test_none_is_no_opinion_not_unreachable():
    v = verdict({"h2": None, "h3": None, "h4": LOST})
    assert v.state == UNKNOWN


def test_unknown_on_a_split():
    # Partial partition: 2 reach it, 2 lost it; it may or may not have
    # fenced itself (it reaches 2 of 4 < 3): evacuate nothing.
    v = verdict({"h2": 0.5, "h3": 0.5, "h4": LOST, "h5": LOST})
    assert v.state == UNKNOWN and "split" in v.reason


def test_unknown_without_peers():
    assert verdict({}, count=0).state == UNKNOWN


def test_unknown_without_a_known_grant():
    assert verdict({"h2": LOST, "h3": LOST}, granted=None).state == UNKNOWN


@pytest.mark.parametrize("offset", [-1e9, 0.0, 1e9])
def test_only_intervals_matter_not_the_clock_origin(offset):
    # Monotonic clocks have any origin: only now - granted counts.
    v = verdict({"h2": LOST, "h3": LOST}, now=100.0 + offset,
                granted=80.0 + offset)
    assert v.state == FENCED


def test_verdict_is_a_frozen_dataclass():
    v = Verdict(FENCED, "x")
    with pytest.raises(AttributeError):
        v.state = WAIT
