"""The simulated fleet behind the real agent RPC (agent.sim.rpc_fleet):
the controller's real HostManager, engine and client drive simulated
agents on UNIX sockets, in other processes."""
import time

import pytest

from agent.conf import CONF
from agent.controller import states
from agent.sim.rpc_fleet import RpcFleet
from sim_helpers import new_store


@pytest.fixture
def world(tmp_path):
    store = new_store(tmp_path)
    store.create_flavor("small", 1, 256, 1)
    image = store.create_image("img", "/images/img", "qcow2", 1 << 30,
                               1 << 24, checksum="x")
    # 6 hosts of 2 vCPUs (8 with the allocation ratio of 4): room for 48.
    fleet = RpcFleet(6, str(tmp_path / "sock"), processes=2,
                     image_ids=[image["uuid"]], vcpus=2, memory_mb=16384)
    fleet.start()
    svc = fleet.controller(store)
    yield fleet, svc, store
    svc.engine.shutdown(wait=True)
    svc.hosts.close()
    fleet.close()
    store.close()


def test_hosts_register_and_poll_over_the_rpc(world):
    fleet, svc, store = world
    assert {h["name"]: h["state"] for h in store.list_hosts()} == \
        {name: "up" for name, _ in fleet.hosts}
    assert all(h["vcpus"] == 2 for h in store.list_hosts())
    for name, _ in fleet.hosts:
        svc.hosts.poll_host(name)
    assert all(h["down_reason"] is None for h in store.list_hosts())


def test_concurrent_boots_run_where_the_store_says_within_capacity(world):
    fleet, svc, store = world
    tasks = [svc.admission.create(f"vm{i}", "small", "img")[1]
             for i in range(50)]
    for task in tasks:
        svc.engine.wait(task, timeout=120)
    done = [t for t in tasks if store.task_get(t)["state"] == "done"]
    # 48 fit; the last two find no valid host, and none oversubscribes.
    assert len(done) == 48
    running = {d["uuid"]: host for host, doms in fleet.domains().items()
               for d in doms if d["state"] == "running"}
    active = {i["uuid"]: i["host"] for i in store.list_instances()
              if i["vm_state"] == states.ACTIVE}
    assert running == active and len(active) == 48
    for host, _ in fleet.hosts:
        assert store.host_usage(host)["vcpus"] <= 2 * 4


def test_powered_off_hosts_are_found_down(world):
    fleet, svc, store = world
    CONF.set_override("host_down_after", 1, group="controller")
    try:
        fleet.power_off(["h0001", "h0004"])
        for name, _ in fleet.hosts:
            svc.hosts.poll_host(name)
        time.sleep(1.1)
        for name, _ in fleet.hosts:
            svc.hosts.poll_host(name)
    finally:
        CONF.clear_override("host_down_after", group="controller")
    down = {h["name"] for h in store.list_hosts() if h["state"] == "down"}
    assert down == {"h0001", "h0004"}
    reason = store.get_host("h0001")["down_reason"]
    assert "h0001" in reason
