"""Server groups: the filters and weighers (pure), the store's groups,
and claims that check the group again inside their transaction."""
import threading

import pytest

from agent.common.errors import Conflict, InvalidInput, NotFound
from agent.controller import placement
from agent.controller.db import ClaimFailed, Store, upgrade
from agent.controller.scheduler import (GroupSpec, HostState, NoValidHost,
                                        Policy, Request, select)

POLICY = Policy(reserved_host_memory_mb=512)
FLAVOR = {"vcpus": 1, "ram_mb": 256, "disk_gb": 1, "properties": {}}


def host(name, ram_alloc=0):
    return HostState(name=name, memory_mb=8192, vcpus=8, disk_gb=100,
                     ram_mb_alloc=ram_alloc)


def req(policy, hosts, max_per_host=1):
    return Request(1, 256, 1, group=GroupSpec("g", policy, max_per_host,
                                              hosts))


HOSTS = [host("a"), host("b"), host("c")]


def test_anti_affinity_rejects_hosts_with_a_member_and_names_the_filter():
    d = select(req("anti-affinity", {"a": 1, "b": 1}), HOSTS, POLICY)
    assert d.hosts == ["c"]
    assert d.rejected["a"].filter == "ServerGroupAntiAffinityFilter"
    assert "server group g (anti-affinity) has 1 member here" in \
        d.rejected["a"].reason


def test_anti_affinity_full_fleet_is_no_valid_host_naming_the_filter():
    with pytest.raises(NoValidHost, match="ServerGroupAntiAffinityFilter"):
        select(req("anti-affinity", {"a": 1, "b": 1, "c": 1}), HOSTS, POLICY)


def test_max_server_per_host_allows_that_many():
    d = select(req("anti-affinity", {"a": 1, "b": 2}, max_per_host=2),
               HOSTS, POLICY)
    assert sorted(d.hosts) == ["a", "c"]


def test_affinity_keeps_members_together_and_is_free_when_empty():
    d = select(req("affinity", {"b": 2}), HOSTS, POLICY)
    assert d.hosts == ["b"]
    assert d.rejected["a"].filter == "ServerGroupAffinityFilter"
    assert sorted(select(req("affinity", {}), HOSTS, POLICY).hosts) == \
        ["a", "b", "c"]


def test_soft_policies_never_reject_and_weigh():
    # "a" has the most free RAM, but the group's wish wins over RAM.
    hosts = [host("a"), host("b", ram_alloc=1024), host("c", ram_alloc=512)]
    anti = select(req("soft-anti-affinity", {"a": 2, "c": 1}), hosts,
                  POLICY)
    assert anti.rejected == {} and anti.hosts == ["b", "c", "a"]
    aff = select(req("soft-affinity", {"b": 1}), hosts, POLICY)
    assert aff.rejected == {} and aff.hosts[0] == "b"


def test_no_group_weighs_by_ram_as_before():
    hosts = [host("a", ram_alloc=2048), host("b"), host("c", ram_alloc=1)]
    d = select(Request(1, 256, 1), hosts, POLICY)
    assert d.hosts == ["b", "c", "a"]
    assert d.candidates[0].weight == 1.0 and d.candidates[-1].weight == 0.0


def test_group_spec_planned_moves():
    spec = GroupSpec("g", "anti-affinity", 1, {"a": 1})
    moved = spec.without_member_on("a").with_member_on("b")
    assert moved.hosts == {"b": 1} and spec.hosts == {"a": 1}


# -- the store ---------------------------------------------------------------

@pytest.fixture
def store(tmp_path):
    url = f"sqlite:///{tmp_path}/drover.db"
    upgrade(url)
    st = Store(url)
    for name in ("h1", "h2", "h3"):
        st.upsert_host(name, "198.18.0.2", facts={
            "vcpus": 8, "memory_mb": 8192, "disk_gb": 100})
        st.mark_host_up(name)
    st.create_flavor("tiny", 1, 256, 1)
    st.create_image("img", "/nonexistent", "qcow2", 1 << 20, 1 << 20)
    yield st
    st.close()


def _member(store, group, name):
    inst = store.create_instance(name, "tiny", "img")
    store.add_group_member(group, inst["uuid"])
    return inst["uuid"]


def test_group_create_show_delete_and_bad_input(store):
    g = store.create_group("web", "anti-affinity",
                           {"max_server_per_host": "2"})
    assert g["rules"] == {"max_server_per_host": 2} and g["members"] == []
    with pytest.raises(Conflict, match="already exists"):
        store.create_group("web", "affinity")
    with pytest.raises(InvalidInput, match="unknown policy"):
        store.create_group("x", "spread")
    with pytest.raises(InvalidInput, match="anti-affinity policy only"):
        store.create_group("x", "affinity", {"max_server_per_host": "2"})
    with pytest.raises(InvalidInput, match="integer >= 1"):
        store.create_group("x", "anti-affinity", {"max_server_per_host": "0"})
    with pytest.raises(InvalidInput, match="unknown server group rule"):
        store.create_group("x", "anti-affinity", {"spread": "1"})
    uuid = _member(store, "web", "vm1")
    assert store.get_group("web")["members"] == [uuid]
    assert store.get_group(g["uuid"])["name"] == "web"
    store.delete_group("web")
    with pytest.raises(NotFound):
        store.get_group("web")
    assert store.instance_group(uuid) is None


def test_an_instance_is_in_one_group_only(store):
    store.create_group("a", "affinity")
    store.create_group("b", "affinity")
    uuid = _member(store, "a", "vm1")
    with pytest.raises(Conflict, match="already in server group a"):
        store.add_group_member("b", uuid)


def test_group_hosts_come_from_claims_other_members_only(store):
    store.create_group("web", "anti-affinity")
    u1, u2 = _member(store, "web", "vm1"), _member(store, "web", "vm2")
    store.claim("h1", u1, 1, 256, 1, instance_uuid=u1)
    store.claim("h2", "mig-1", 1, 256, 1, instance_uuid=u1)  # mid-move
    assert store.instance_group(u2)["hosts"] == {"h1": 1, "h2": 1}
    assert store.instance_group(u1)["hosts"] == {}
    assert store.group_placement("web")["hosts"] == {"h1": 1, "h2": 1}


def test_claim_rechecks_the_group_in_its_transaction(store):
    """A claim that select() allowed from an old view is refused once
    another member got the host first."""
    store.create_group("web", "anti-affinity")
    u1, u2 = _member(store, "web", "vm1"), _member(store, "web", "vm2")
    store.claim("h1", u1, 1, 256, 1, instance_uuid=u1)
    with pytest.raises(ClaimFailed,
                       match="h1: ServerGroupAntiAffinityFilter"):
        store.claim("h1", u2, 1, 256, 1, instance_uuid=u2)
    assert store.list_allocations(consumer=u2) == []


def test_affinity_claim_recheck(store):
    store.create_group("db", "affinity")
    u1, u2 = _member(store, "db", "vm1"), _member(store, "db", "vm2")
    store.claim("h2", u1, 1, 256, 1, instance_uuid=u1)
    with pytest.raises(ClaimFailed, match="ServerGroupAffinityFilter"):
        store.claim("h1", u2, 1, 256, 1, instance_uuid=u2)
    store.claim("h2", u2, 1, 256, 1, instance_uuid=u2)


def test_concurrent_places_into_anti_affinity_never_share_a_host(store):
    store.create_group("web", "anti-affinity")
    uuids = [_member(store, "web", f"vm{i}") for i in range(4)]
    got, failed = {}, []
    barrier = threading.Barrier(len(uuids))

    def boot(uuid):
        barrier.wait()
        try:
            got[uuid] = placement.place(store, FLAVOR, uuid, uuid)
        except NoValidHost as err:
            failed.append(str(err))
    threads = [threading.Thread(target=boot, args=(u,)) for u in uuids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got.values()) == ["h1", "h2", "h3"]
    assert len(failed) == 1 and "ServerGroupAntiAffinityFilter" in failed[0]


def test_place_honours_the_group_for_moves(store):
    store.create_group("web", "anti-affinity")
    u1, u2 = _member(store, "web", "vm1"), _member(store, "web", "vm2")
    store.claim("h1", u1, 1, 256, 1, instance_uuid=u1)
    store.claim("h2", u2, 1, 256, 1, instance_uuid=u2)
    # vm2 moves away from h2: h1 holds vm1, so only h3 is left.
    assert placement.place(store, FLAVOR, "mig-2", u2,
                           ignore_hosts=("h2",)) == "h3"


def test_dry_run_names_the_group_filter(store):
    store.create_group("web", "anti-affinity")
    u1 = _member(store, "web", "vm1")
    store.claim("h1", u1, 1, 256, 1, instance_uuid=u1)
    rows = placement.explain(store, FLAVOR,
                             group=store.group_placement("web"))
    by_host = {r["Host"]: r for r in rows}
    assert by_host["h1"]["Filter"] == "ServerGroupAntiAffinityFilter"
    assert by_host["h2"]["Result"] in ("chosen", "candidate")
