"""A placement reads the best hosts first (the store's weight-ordered
read, weighers.ram_order): it must claim the host that weighing the
whole fleet would choose, on SQLite and on PostgreSQL, and read the rest
when none of the best passes or wins its claim."""
import random

import pytest

from agent.conf import CONF
from agent.controller import placement
from agent.controller.db import ClaimFailed, Store
from agent.controller.scheduler import (GroupSpec, NoValidHost, Policy,
                                        Request, select)
from agent.controller.scheduler.weighers import ram_order

# Names whose code point order differs from a natural language's
# collation (capitals, '-', '.', '_'): ties are broken as Python does.
NAMES = ["h-1", "h1", "H2", "h.3", "h_4", "a9", "Z0", "h10", "h2", "b-b",
         "bb", "B.a", "m", "M", "n-", "n0"]


@pytest.fixture
def store(store_url):
    st = Store(store_url)
    yield st
    st.close()


def fleet(store, seed):
    """NAMES as hosts of a few sizes with allocations that leave many
    ties of free RAM; some down, disabled, in a zone, or on SSD."""
    rnd = random.Random(seed)
    for i, name in enumerate(NAMES):
        store.upsert_host(name, address=f"198.18.2.{i + 1}", facts={
            "vcpus": rnd.choice((2, 4, 8)),
            "memory_mb": rnd.choice((4096, 8192)),
            "disk_gb": rnd.choice((20, 100))})
        used = rnd.choice((0, 0, 1024, 2048, 3072))
        if used:
            store.claim(name, f"used-{name}", rnd.choice((1, 2)), used,
                        rnd.choice((1, 10)))
    store.mark_host_down(NAMES[3])
    store.disable_host(NAMES[7], "maintenance")
    store.create_aggregate("ssd")
    store.set_aggregate_metadata("ssd", {"ssd": "true",
                                         "availability_zone": "az1"})
    for name in rnd.sample(NAMES, 9):
        store.add_aggregate_host("ssd", name)


REQUESTS = [
    Request(1, 512, 1),                       # narrows nothing
    Request(2, 3072, 10),
    Request(1, 512, 1, availability_zone="az1"),
    Request(1, 1024, 1, properties={"ssd": "true"}),
    Request(1, 1024, 1, properties={"ssd": "<in> tru"}),   # not in SQL
    Request(1, 512, 1, ignore_hosts=frozenset({"h1", "a9"})),
    Request(1, 512, 1, force_host="m"),
    Request(1, 6000, 1),
]


def best(request, hosts, policy):
    try:
        return select(request, hosts, policy).hosts
    except NoValidHost:
        return []


@pytest.mark.parametrize("weigher", ["spread", "pack"])
@pytest.mark.parametrize("seed", [1, 2])
def test_the_best_hosts_read_are_those_weighing_the_fleet_ranks_first(
        store, seed, weigher):
    fleet(store, seed)
    policy = Policy(weigher=weigher)
    for request in REQUESTS:
        want = best(request, store.host_states(), policy)
        for limit in (1, 3, 64):
            hosts = store.host_states(request, limit=limit, policy=policy)
            assert len(hosts) <= limit
            # What passes of them is the start of the fleet's ranking.
            got = best(request, hosts, policy)
            assert got == want[:len(got)], (request, limit)
            if len(hosts) < limit:      # every host it may use was read
                assert got == want


@pytest.mark.parametrize("weigher", ["spread", "pack"])
def test_placement_claims_the_host_weighing_the_fleet_chooses(
        store, weigher, monkeypatch):
    fleet(store, 3)
    monkeypatch.setattr(CONF.scheduler, "weigher", weigher)
    flavor = {"vcpus": 1, "ram_mb": 1024, "disk_gb": 1, "properties": {}}
    for i in range(6):
        want = best(placement.request_for(flavor),
                    store.host_states(), Policy.from_conf())
        got = placement.place(store, flavor, f"c{i}", f"c{i}")
        assert got == want[0]
        assert [a["host"] for a in store.list_allocations(
            consumer=f"c{i}")] == [got]


def test_a_request_that_narrows_nothing_reads_one_page(store):
    fleet(store, 4)
    assert len(store.host_states(Request(1, 512, 1), limit=3)) == 3


def test_hosts_without_the_room_are_left_out_and_exactly_full_kept(store):
    facts = {"vcpus": 4, "memory_mb": 4096 + 512, "disk_gb": 10}
    for name in ("exact", "short"):
        store.upsert_host(name, address="198.18.3.1", facts=facts)
    store.claim("short", "x", 1, 1, 1)
    names = {h.name for h in store.host_states(Request(16, 4096, 10),
                                               policy=Policy())}
    assert names == {"exact"}
    assert select(Request(16, 4096, 10), store.host_states(),
                  Policy()).hosts == ["exact"]


def test_best_hosts_without_one_that_passes_read_the_rest(store,
                                                         monkeypatch):
    for i in range(5):
        store.upsert_host(f"h{i}", address="198.18.4.1", facts={
            "vcpus": 8, "memory_mb": 16384 - 1024 * i, "disk_gb": 100})
    # Only h4, the last by free RAM, matches; SQL cannot narrow <in>.
    store.create_aggregate("gpu")
    store.set_aggregate_metadata("gpu", {"gpu": "v100 k80"})
    store.add_aggregate_host("gpu", "h4")
    flavor = {"vcpus": 1, "ram_mb": 512, "disk_gb": 1,
              "properties": {"gpu": "<in> k80"}}
    reads = []
    real = store.host_states
    monkeypatch.setattr(store, "host_states", lambda *a, **kw: (
        reads.append((bool(a), kw.get("limit"))), real(*a, **kw))[1])
    decisions = placement.decisions(store, placement.request_for(flavor),
                                    page=2)
    assert next(decisions).hosts == ["h4"]
    # The best 2, then the rest the request may use, not host by host.
    assert reads == [(True, 2), (True, None)]


def test_claims_lost_on_all_the_best_go_on_to_the_rest(store, monkeypatch):
    for i in range(4):
        store.upsert_host(f"h{i}", address="198.18.5.1", facts={
            "vcpus": 8, "memory_mb": 16384 - 1024 * i, "disk_gb": 100})
    monkeypatch.setattr(placement, "PAGE", 2)
    real = store.claim

    def racing(host, *args, **kwargs):      # h0, h1: taken meanwhile
        if host in ("h0", "h1"):
            raise ClaimFailed(f"host {host} cannot take it")
        return real(host, *args, **kwargs)
    monkeypatch.setattr(store, "claim", racing)
    flavor = {"vcpus": 1, "ram_mb": 512, "disk_gb": 1, "properties": {}}
    assert placement.place(store, flavor, "c1", "c1") == "h2"


def test_every_claim_lost_is_no_valid_host_naming_them(store, monkeypatch):
    for i in range(2):
        store.upsert_host(f"h{i}", address="198.18.6.1", facts={
            "vcpus": 8, "memory_mb": 16384, "disk_gb": 100})

    def lost(host, *args, **kwargs):
        raise ClaimFailed(f"host {host} cannot take 512 MB RAM")
    monkeypatch.setattr(store, "claim", lost)
    flavor = {"vcpus": 1, "ram_mb": 512, "disk_gb": 1, "properties": {}}
    with pytest.raises(NoValidHost, match="host h0 cannot take 512 MB "
                       "RAM; host h1 cannot take"):
        placement.place(store, flavor, "c1", "c1")


def test_soft_affinity_weighs_every_host_it_may_use():
    spread = Policy()
    assert ram_order(Request(1, 1, 1), spread) == "spread"
    assert ram_order(Request(1, 1, 1), Policy(weigher="pack")) == "pack"
    for policy in ("soft-affinity", "soft-anti-affinity"):
        group = GroupSpec("g", policy, hosts={"h1": 1})
        assert ram_order(Request(1, 1, 1, group=group), spread) is None
        # No member placed yet: the group weighers cannot tell hosts
        # apart.
        assert ram_order(Request(1, 1, 1, group=GroupSpec("g", policy)),
                         spread) == "spread"
    hard = GroupSpec("g", "anti-affinity", hosts={"h1": 1})
    assert ram_order(Request(1, 1, 1, group=hard), spread) == "spread"


def test_soft_affinity_placement_goes_where_the_members_are(store):
    for i in range(3):
        store.upsert_host(f"h{i}", address="198.18.7.1", facts={
            "vcpus": 8, "memory_mb": 16384 - 1024 * i, "disk_gb": 100})
    store.create_group("g", "soft-affinity")
    flavor = {"vcpus": 1, "ram_mb": 512, "disk_gb": 1, "properties": {}}
    store.add_group_member("g", "first")
    assert placement.place(store, flavor, "first", "first") == "h0"
    store.claim("h2", "other", 1, 512, 1, instance_uuid="other")
    store.add_group_member("g", "other")
    store.release("first")
    store.add_group_member("g", "second")
    # h0 has the most free RAM, h2 the group's member.
    assert placement.place(store, flavor, "second", "second") == "h2"
