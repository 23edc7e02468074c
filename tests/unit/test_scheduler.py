"""Scheduler: filters, weighers, and the explanation of a refusal."""

import pytest

from agent.controller.scheduler import (HostState, NoValidHost, Policy,
                                        Request, select)
from agent.controller.scheduler.extra_specs import matches

POLICY = Policy(cpu_allocation_ratio=4.0, ram_allocation_ratio=1.0,
                disk_allocation_ratio=1.0, reserved_host_memory_mb=512)


def host(name, ram=4096 + 512, vcpus=4, disk=100, **kw):
    return HostState(name=name, memory_mb=ram, vcpus=vcpus, disk_gb=disk,
                     **kw)


def req(ram=1024, vcpus=1, disk=10, **kw):
    return Request(vcpus=vcpus, ram_mb=ram, disk_gb=disk, **kw)


def place(request, hosts, policy=POLICY):
    return select(request, hosts, policy)


def test_down_and_disabled_hosts_are_rejected_with_reason():
    d = place(req(), [host("a", up=False),
                      host("b", enabled=False, disabled_reason="maint"),
                      host("c")])
    assert d.hosts == ["c"]
    assert d.rejected["a"].filter == "ComputeFilter"
    assert d.rejected["a"].reason == "host is down"
    assert d.rejected["b"].reason == "disabled (maint)"


def test_ram_counts_reservation_ratio_and_allocations():
    # 4096 usable after the 512 MB reservation; 3072 already promised.
    full = host("a", ram_mb_alloc=3072)
    d = place(req(ram=1024), [full])
    assert d.hosts == ["a"]
    with pytest.raises(NoValidHost) as err:
        place(req(ram=1025), [full])
    assert "RamFilter: a (1024 MB RAM free, 1025 MB needed)" in str(err.value)
    # Overcommit doubles what may be promised.
    double = Policy(ram_allocation_ratio=2.0, reserved_host_memory_mb=512)
    assert place(req(ram=5000), [full], double).hosts == ["a"]


def test_vcpu_and_disk_limits():
    h = host("a", vcpus=2, disk=20, vcpus_alloc=7, disk_gb_alloc=15)
    assert place(req(vcpus=1, disk=5), [h]).hosts == ["a"]
    with pytest.raises(NoValidHost, match="CoreFilter: a .1 vCPUs free"):
        place(req(vcpus=2, disk=5), [h])
    with pytest.raises(NoValidHost, match="DiskFilter: a .5 GB disk free"):
        place(req(vcpus=1, disk=6), [h])


def test_availability_zone():
    hosts = [host("a", availability_zone="az1"),
             host("b", availability_zone="az2")]
    assert place(req(availability_zone="az2"), hosts).hosts == ["b"]
    assert sorted(place(req(), hosts).hosts) == ["a", "b"]
    d = place(req(availability_zone="az2"), hosts)
    assert d.rejected["a"].reason == "in zone az1, not az2"


def test_aggregate_extra_specs_scoped_and_plain():
    ssd = host("ssd", metadata={"ssd": frozenset({"true"})})
    hdd = host("hdd", metadata={"ssd": frozenset({"false"})})
    bare = host("bare")
    hosts = [ssd, hdd, bare]
    for props in ({"aggregate_instance_extra_specs:ssd": "true"},
                  {"ssd": "true"}):
        d = place(req(properties=props), hosts)
        assert d.hosts == ["ssd"]
        assert d.rejected["hdd"].reason == "aggregate metadata ssd is not " \
                                           "true"
        assert d.rejected["bare"].reason == "no aggregate metadata ssd"
    # Other scopes are not about aggregates; hosts may have extra metadata.
    d = place(req(properties={"hw:cpu_policy": "dedicated"}), hosts)
    assert sorted(d.hosts) == ["bare", "hdd", "ssd"]


def test_aggregate_metadata_from_several_aggregates():
    h = host("a", metadata={"gpu": frozenset({"k80", "v100"})})
    assert place(req(properties={"gpu": "v100"}), [h]).hosts == ["a"]


@pytest.mark.parametrize("value,requirement,ok", [
    ("true", "true", True), ("True", "true", False),
    ("8", ">= 4", True), ("2", ">= 4", False), ("4", "= 4", True),
    ("4", "== 4.0", True), ("abc", "s== abc", True), ("abc", "s!= abc", False),
    ("fast ssd", "<in> ssd", True), ("a b c", "<all-in> a c", True),
    ("a b", "<all-in> a c", False), ("blue", "<or> red <or> blue", True),
    ("green", "<or> red <or> blue", False), ("x", ">= 4", False),
])
def test_extra_spec_operators(value, requirement, ok):
    assert matches(value, requirement) is ok


def test_ignore_hosts_and_force_host():
    hosts = [host("a"), host("b"), host("c")]
    d = place(req(ignore_hosts=frozenset({"a"})), hosts)
    assert "a" not in d.hosts and d.rejected["a"].filter == "IgnoreHosts"
    assert place(req(force_host="b"), hosts).hosts == ["b"]
    # The forced host's filters still run; others are not blamed.
    with pytest.raises(NoValidHost) as err:
        place(req(force_host="b"), [host("a"), host("b", up=False)])
    assert str(err.value) == ("No valid host was found: ComputeFilter: b "
                              "(host is down)")
    with pytest.raises(NoValidHost, match="forced host zz is not known"):
        place(req(force_host="zz"), hosts)


def test_spread_prefers_most_free_ram_and_pack_the_least():
    hosts = [host("a", ram_mb_alloc=1024), host("b"),
             host("c", ram_mb_alloc=2048)]
    d = place(req(), hosts)
    assert d.hosts == ["b", "a", "c"]
    assert d.candidates[0].weight == 1.0 and d.candidates[-1].weight == 0.0
    pack = Policy(reserved_host_memory_mb=512, weigher="pack")
    assert place(req(), hosts, pack).hosts == ["c", "a", "b"]


def test_ties_are_broken_by_name():
    assert place(req(), [host("b"), host("a")]).hosts == ["a", "b"]


def test_policy_comes_from_conf():
    from agent.conf import CONF
    CONF.set_override("weigher", "pack", group="scheduler")
    CONF.set_override("reserved_host_memory_mb", 0, group="scheduler")
    try:
        hosts = [host("a", ram=2048), host("b", ram=1024)]
        assert select(req(ram=1024), hosts).hosts == ["b", "a"]
    finally:
        CONF.clear_override("weigher", group="scheduler")
        CONF.clear_override("reserved_host_memory_mb", group="scheduler")


def test_no_valid_host_message_is_compact():
    hosts = [host(f"h{i}", up=False) for i in range(10)] + [
        host("small", ram=1024)]
    with pytest.raises(NoValidHost) as err:
        place(req(ram=2048), hosts)
    text = str(err.value)
    assert "\n" not in text
    assert text == ("No valid host was found: ComputeFilter: h0 (host is "
                    "down), h1 (host is down), h2 (host is down) and 7 more; "
                    "RamFilter: small (512 MB RAM free, 2048 MB needed)")
    assert len(err.value.decision.rejected) == 11
    assert err.value.exit_code == 1


def test_empty_fleet():
    with pytest.raises(NoValidHost, match="no hosts"):
        place(req(), [])


def test_request_for_flavor():
    r = Request.for_flavor({"vcpus": 2, "ram_mb": 512, "disk_gb": 1,
                            "properties": {"ssd": "true"}},
                           ignore_hosts=frozenset({"a"}))
    assert (r.vcpus, r.ram_mb, r.disk_gb, r.properties["ssd"]) == \
        (2, 512, 1, "true")


def test_ten_thousand_hosts_are_each_judged():
    """Every host is a candidate or rejected with a reason (how fast is
    bench/bench_scheduler.py's to say: no timing asserts in tests)."""
    hosts = [host(f"h{i:05d}", ram_mb_alloc=(i * 37) % 4096,
                  up=i % 50 != 0,
                  availability_zone=("az1", "az2")[i % 2],
                  metadata={"ssd": frozenset({("true", "false")[i % 3 == 0]})})
             for i in range(10_000)]
    request = req(ram=512, availability_zone="az1",
                  properties={"ssd": "true"})
    d = place(request, hosts)
    assert d.candidates and len(d.candidates) + len(d.rejected) == 10_000
    assert all(why.reason for why in d.rejected.values())
