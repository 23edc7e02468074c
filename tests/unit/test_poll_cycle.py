"""A poll cycle over many hosts (HostManager.poll_cycle): every host that
answers is seen, what changed is recorded, silent hosts go down, owed
clean-ups are done, and late answers count, while a cycle of hosts with
nothing new writes the store once."""
import datetime
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from agent.conf import CONF
from agent.controller import hosts as hostsmod
from agent.controller import states
from agent.controller.db import Store, upgrade
from agent.controller.db.models import jsonable
from agent.transport.errors import HostUnreachable

FACTS = {"vcpus": 8, "memory_mb": 4096, "disk_gb": 40, "vcpus_used": 0}
NAMES = [f"h{i}" for i in range(6)]


class Agents:
    """host.facts per host (``facts``), ``unreachable`` hosts, ``slow``
    hosts that answer after ``delay`` seconds; other calls recorded."""

    def __init__(self):
        self.facts = {name: dict(FACTS, domains=[]) for name in NAMES}
        self.unreachable, self.slow, self.delay = set(), set(), 0.0
        self.calls = []
        self._lock = threading.Lock()

    def call(self, host, method, timeout=None, **params):
        if host in self.unreachable:
            raise HostUnreachable(f"cannot connect to {host}: refused")
        if host in self.slow:
            time.sleep(self.delay)
        with self._lock:
            self.calls.append((host, method, params.get("uuid")))
        if method == "host.facts":
            return dict(self.facts[host])
        return {}


@pytest.fixture
def store(tmp_path):
    url = f"sqlite:///{tmp_path}/drover.db"
    upgrade(url)
    st = Store(url)
    for i, name in enumerate(NAMES):
        st.upsert_host(name, address=f"198.18.9.{i + 1}", facts=FACTS)
    st.create_flavor("small", 1, 256, 1)
    st.create_image("img", "/store/img", "qcow2", 1 << 27, 1 << 24)
    yield st
    st.close()


@pytest.fixture
def agents():
    return Agents()


@pytest.fixture
def manager(store, agents, mocker):
    m = hostsmod.HostManager(store)
    mocker.patch.object(m, "call", side_effect=agents.call)
    mocker.patch.object(m, "_subscribe")
    return m


def cycle(manager):
    with ThreadPoolExecutor(max_workers=4) as pool:
        manager.poll_cycle(pool)


def seen(store):
    return {h["name"]: h["last_seen"] for h in store.list_hosts()}


LATER = datetime.datetime(2999, 1, 1)      # naive UTC, as the store


@pytest.fixture
def later(mocker):
    """Answers come, and polls are asked, at LATER (the store keeps
    times to the second)."""
    mocker.patch.object(hostsmod, "utcnow", return_value=LATER)
    mocker.patch.object(hostsmod, "_now", return_value=jsonable(LATER))
    return jsonable(LATER)


def test_every_host_is_seen_and_nothing_new_is_one_write(store, manager,
                                                         mocker, later):
    upserts = mocker.spy(store, "upsert_host")
    batches = mocker.spy(store, "hosts_seen")
    cycle(manager)
    assert seen(store) == {n: later for n in NAMES}
    assert all(h["state"] == "up" and h["down_reason"] is None
               and h["vcpus"] == 8 for h in store.list_hosts())
    assert upserts.call_count == 0 and batches.call_count == 1


def test_changed_facts_are_recorded(store, manager, agents, later):
    agents.facts["h2"]["vcpus_used"] = 3
    agents.facts["h4"]["memory_mb"] = 8192
    cycle(manager)
    assert store.get_host("h2")["vcpus_used"] == 3
    assert store.get_host("h4")["memory_mb"] == 8192
    assert store.get_host("h0")["vcpus_used"] == 0
    assert seen(store)["h0"] == later


def test_silent_hosts_go_down_and_come_back(store, manager, agents, mocker):
    clock = itertools.count(0, CONF.controller.host_down_after)
    mocker.patch.object(hostsmod, "time").monotonic.side_effect = \
        lambda: next(clock)
    cycle(manager)
    last = seen(store)
    agents.unreachable = {"h1", "h3"}
    cycle(manager)
    cycle(manager)
    hosts = {h["name"]: h for h in store.list_hosts()}
    assert {n for n, h in hosts.items() if h["state"] == "down"} == \
        {"h1", "h3"}
    assert hosts["h1"]["down_reason"] == "cannot connect to h1: refused"
    assert hosts["h1"]["last_seen"] == last["h1"]
    agents.unreachable = set()
    cycle(manager)
    hosts = {h["name"]: h for h in store.list_hosts()}
    assert all(h["state"] == "up" and h["down_reason"] is None
               for h in hosts.values())


def test_clean_ups_an_up_host_owes_are_done(store, manager, agents):
    inst = store.create_instance("gone", "small", "img")
    store.record_cleanup("h2", inst["uuid"], "local", ["domain"])
    store.mark_instance_deleted(inst["uuid"])   # deleted while h2 was away
    cycle(manager)
    done = [(h, m) for h, m, u in agents.calls if u == inst["uuid"]]
    assert done and all(h == "h2" for h, _ in done)
    assert store.list_cleanups() == []
    assert store.get_host("h2")["state"] == "up"


def test_late_answers_are_recorded_too(store, manager, agents, later):
    CONF.set_override("poll_interval", 1, group="controller")
    try:
        # Answers after half the poll interval: the cycle's second batch.
        agents.slow, agents.delay = {"h0", "h5"}, 0.6
        agents.facts["h5"]["vcpus_used"] = 2
        cycle(manager)
    finally:
        CONF.clear_override("poll_interval", group="controller")
    assert seen(store)["h0"] == later
    assert store.get_host("h5")["vcpus_used"] == 2


def test_power_states_are_synced_in_a_cycle(store, manager, agents, later):
    inst = store.create_instance("vm", "small", "img")
    store.update_instance(inst["uuid"], host="h3", vm_state=states.ACTIVE,
                          task_state=None, power_state=states.RUNNING)
    agents.facts["h3"]["domains"] = [{"uuid": inst["uuid"],
                                      "state": "shutoff"}]
    cycle(manager)
    after = store.get_instance(inst["uuid"])
    assert after["status"] == "SHUTOFF"
    assert after["power_state"] == states.SHUTDOWN


def test_a_lifecycle_event_asks_the_host_only_for_a_free_instance(
        store, manager, agents, mocker):
    """A live migration's end brings events from both hosts while its
    task finishes: an instance a task owns, or recorded on another host,
    is left alone without asking the host."""
    inst = store.create_instance("vm", "small", "img")
    store.update_instance(inst["uuid"], host="h3", vm_state=states.ACTIVE,
                          task_state=states.MIGRATING,
                          power_state=states.RUNNING)
    asked = []

    def call(host, method, timeout=None, **params):
        asked.append((host, method))
        return {"state": "shutoff"}
    mocker.patch.object(manager, "call", side_effect=call)
    manager._on_lifecycle("h3", inst["uuid"])
    manager._on_lifecycle("h4", inst["uuid"])
    assert asked == []
    assert store.get_instance(inst["uuid"])["power_state"] == states.RUNNING
    store.update_instance(inst["uuid"], task_state=None)
    manager._on_lifecycle("h4", inst["uuid"])
    manager._on_lifecycle("h3", inst["uuid"])
    assert asked == [("h3", "instance.info")]
    assert store.get_instance(inst["uuid"])["status"] == "SHUTOFF"


@pytest.mark.parametrize("host, facts, owes, want", [
    (dict(FACTS, state="up", forced_down=False, down_reason=None),
     dict(FACTS, domains=[], load={"x": 1}), False, True),
    (dict(FACTS, state="up", forced_down=False, down_reason=None),
     dict(FACTS, vcpus_used=1), False, False),
    (dict(FACTS, state="up", forced_down=False, down_reason=None),
     FACTS, True, False),
    (dict(FACTS, state="up", forced_down=False, down_reason="missed"),
     FACTS, False, False),
    (dict(FACTS, state="up", forced_down=True, down_reason=None),
     FACTS, False, False),
    (dict(FACTS, state="fenced", forced_down=False, down_reason=None),
     FACTS, False, False),
    (dict(FACTS, state="down", forced_down=False, down_reason=None),
     FACTS, False, False),
])
def test_only_an_answer_that_changes_nothing_is_unchanged(host, facts, owes,
                                                          want):
    assert hostsmod.unchanged(host, facts, owes) is want


def test_a_cycle_asked_before_the_last_change_leaves_it(store, manager,
                                                        agents, mocker):
    inst = store.create_instance("vm", "small", "img")
    store.update_instance(inst["uuid"], host="h3", vm_state=states.ACTIVE,
                          task_state=None, power_state=states.RUNNING)
    mocker.patch.object(hostsmod, "_now",
                        return_value="2000-01-01T00:00:00Z")
    agents.facts["h3"]["domains"] = [{"uuid": inst["uuid"],
                                      "state": "shutoff"}]
    cycle(manager)      # e.g. a boot that ended while the cycle ran
    assert store.get_instance(inst["uuid"])["status"] == "ACTIVE"


def test_hosts_seen_sets_each_hosts_time(store_url):
    st = Store(store_url)
    try:
        for i, name in enumerate(("a", "b", "c")):
            st.upsert_host(name, address=f"198.18.8.{i + 1}", facts=FACTS)
        st.mark_host_down("c")
        st.hosts_seen({"a": LATER, "b": datetime.datetime(2998, 5, 6)})
        hosts = {h["name"]: h for h in st.list_hosts()}
        assert hosts["a"]["last_seen"] == jsonable(LATER)
        assert hosts["b"]["last_seen"] == "2998-05-06T00:00:00Z"
        assert hosts["c"]["last_seen"] < "2998"
        # Only when it was seen: the state is the poller's to decide.
        assert [hosts[n]["state"] for n in "abc"] == ["up", "up", "down"]
    finally:
        st.close()
