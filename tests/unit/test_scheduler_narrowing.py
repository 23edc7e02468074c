"""The store's narrowed read of host states (scheduler.prefilter): a
placement reads only the hosts that may take the request, and never
leaves out one that the filters would choose."""
import pytest

from agent.controller import placement
from agent.controller.db import Store, upgrade
from agent.controller.scheduler import NoValidHost, Request, select

FACTS = {"vcpus": 8, "memory_mb": 16384, "disk_gb": 200}


@pytest.fixture
def store(tmp_path):
    """Hosts in zones az1/az2 or none (the default zone), SSD or not, a
    host in two aggregates, one down, one disabled, one nearly full."""
    url = f"sqlite:///{tmp_path}/drover.db"
    upgrade(url)
    st = Store(url)
    for i in range(12):
        st.upsert_host(f"h{i:02d}", address=f"198.18.1.{i + 1}",
                       facts=FACTS)
    for name, meta, members in (
            ("az1-ssd", {"availability_zone": "az1", "ssd": "true"},
             ("h00", "h01", "h02", "h09")),
            ("az1-hdd", {"availability_zone": "az1", "ssd": "false"},
             ("h03", "h04")),
            ("az2", {"availability_zone": "az2", "gpu": "k80 v100"},
             ("h05", "h06")),
            ("fast", {"ssd": "true", "cpu_mhz": "3200"},
             ("h07", "h10", "h09"))):
        st.create_aggregate(name)
        st.set_aggregate_metadata(name, meta)
        for host in members:
            st.add_aggregate_host(name, host)
    st.mark_host_down("h01")
    st.disable_host("h02", "maintenance")
    st.claim("h00", "big", 8, 15000, 10)
    yield st
    st.close()


REQUESTS = [
    Request(1, 512, 1),
    Request(1, 512, 1, availability_zone="az1"),
    Request(1, 512, 1, availability_zone="az2"),
    Request(1, 512, 1, availability_zone="nova"),
    Request(1, 512, 1, properties={"ssd": "true"}),
    Request(1, 512, 1, properties={
        "aggregate_instance_extra_specs:ssd": "true", "hw:cpu": "x"},
        availability_zone="az1"),
    Request(1, 512, 1, properties={"gpu": "<all-in> v100"}),
    Request(1, 512, 1, properties={"cpu_mhz": ">= 3000"}),
    Request(1, 512, 1, properties={"ssd": "<or> true <or> false"},
            availability_zone="nova"),
    Request(1, 512, 1, force_host="h07"),
    Request(1, 4096, 1, ignore_hosts=frozenset({"h10"}),
            properties={"ssd": " true "}),
]


@pytest.mark.parametrize("request_", REQUESTS)
def test_narrowed_read_chooses_as_the_full_read(store, request_):
    full = [h.name for h in store.host_states()]
    narrowed = store.host_states(request_)
    assert {h.name for h in narrowed} <= set(full)
    try:
        want = select(request_, store.host_states()).candidates
    except NoValidHost:
        want = []
    try:
        got = select(request_, narrowed).candidates
    except NoValidHost:
        got = []
    assert got == want


def test_narrowed_read_leaves_out_hosts_that_cannot_take_it(store):
    names = {h.name for h in store.host_states(REQUESTS[5])}
    # az1 on SSD: h01 is down, h02 disabled, h03/h04 without SSD.
    assert names == {"h00", "h09"}


def test_no_valid_host_still_says_why_every_host_was_rejected(store):
    with pytest.raises(NoValidHost) as err:
        placement.place(store, {"vcpus": 1, "ram_mb": 512, "disk_gb": 1,
                                "properties": {"ssd": "true"}},
                        "c1", "c1", availability_zone="az2")
    message = str(err.value)
    assert "h01 (host is down)" in message
    assert "AvailabilityZoneFilter" in message
    assert store.list_allocations(consumer="c1") == []


def test_placement_claims_a_host_the_request_may_use(store):
    host = placement.place(store, {"vcpus": 1, "ram_mb": 2048,
                                   "disk_gb": 1,
                                   "properties": {"ssd": "true"}},
                           "c1", "c1", availability_zone="az1")
    # h00 is nearly full (2048 MB do not fit), h01 down, h02 disabled.
    assert host == "h09"
    assert [a["host"] for a in store.list_allocations(consumer="c1")] == \
        ["h09"]
