"""The lab's address and naming plan."""
import pytest

from agent.common.errors import InvalidInput
from agent.lab.plan import IFNAME_MAX, MAX_HOSTS, make_plan


def test_addresses_follow_the_network():
    plan = make_plan("drover", "198.18.0.0/24")
    hosts = plan.hosts(3)
    assert plan.bridge == "drover-br"
    assert plan.gateway == "198.18.0.1"
    assert [h.address for h in hosts] == ["198.18.0.11", "198.18.0.12",
                                          "198.18.0.13"]
    assert [h.name for h in hosts] == ["drover-h1", "drover-h2", "drover-h3"]
    assert hosts[0].libvirt_uri == "qemu+tcp://198.18.0.11/system"
    assert hosts[0].migration_uri == "tcp://198.18.0.11"


def test_guest_range_starts_after_the_last_possible_host():
    plan = make_plan("lab", "198.18.64.0/24")
    first, last = plan.guest_range
    assert first == "198.18.64.31"
    assert last == "198.18.64.254"
    assert plan.host(MAX_HOSTS).address < first


def test_longest_names_fit_the_kernel_limit():
    plan = make_plan("abcdefghij", "198.18.0.0/24")
    names = [plan.bridge] + [h.veth for h in plan.hosts(MAX_HOSTS)]
    assert max(len(n) for n in names) <= IFNAME_MAX


@pytest.mark.parametrize("name", ["", "Drover", "1lab", "lab-x",
                                  "abcdefghijk", "la b"])
def test_bad_names_are_refused(name):
    with pytest.raises(InvalidInput):
        make_plan(name, "198.18.0.0/24")


@pytest.mark.parametrize("network", ["10.0.0.0/24", "198.20.0.0/24",
                                     "198.18.0.1/24", "198.18.0.0/27",
                                     "not-a-net", "2001:db8::/64"])
def test_bad_networks_are_refused(network):
    with pytest.raises(InvalidInput):
        make_plan("lab", network)


def test_hosts_resolve_by_index_short_or_full_name():
    plan = make_plan("drvt", "198.18.64.0/24")
    assert plan.resolve(2).name == "drvt-h2"
    assert plan.resolve("h2").name == "drvt-h2"
    assert plan.resolve("drvt-h2").name == "drvt-h2"
    for bad in ("h0", "x2", "other-h2", f"h{MAX_HOSTS + 1}", ""):
        with pytest.raises(InvalidInput):
            plan.resolve(bad)


def test_host_uuids_are_distinct_and_stable():
    a = make_plan("lab", "198.18.0.0/24")
    b = make_plan("other", "198.18.0.0/24")
    uuids = {h.host_uuid for h in a.hosts(MAX_HOSTS)}
    assert len(uuids) == MAX_HOSTS
    assert a.host(1).host_uuid == make_plan("lab", "198.18.32.0/24") \
        .host(1).host_uuid
    assert a.host(1).host_uuid != b.host(1).host_uuid


@pytest.mark.parametrize("count", [0, MAX_HOSTS + 1])
def test_host_count_is_bounded(count):
    with pytest.raises(InvalidInput):
        make_plan("lab", "198.18.0.0/24").hosts(count)


def test_a_host_gets_the_eth0_mac_the_plan_chooses():
    plan = make_plan("lab", "198.18.0.0/24", {2: "FE:FF:00:00:00:02"})
    assert plan.host(2).eth0_mac == "fe:ff:00:00:00:02"
    assert plan.host(1).eth0_mac is None
    assert make_plan("lab", "198.18.0.0/24").host(2).eth0_mac is None


@pytest.mark.parametrize("macs", [{1: "01:00:00:00:00:01"},   # multicast
                                  {1: "00:00:00:00:00:00"},
                                  {1: "fe:ff:00:00:00"},
                                  {1: "fe-ff-00-00-00-02"},
                                  {0: "02:00:00:00:00:01"},
                                  {MAX_HOSTS + 1: "02:00:00:00:00:01"},
                                  {1: "02:00:00:00:00:01",
                                   2: "02:00:00:00:00:01"}])
def test_bad_eth0_macs_are_refused(macs):
    with pytest.raises(InvalidInput):
        make_plan("lab", "198.18.0.0/24", macs)
