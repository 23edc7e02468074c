"""Fencing on return: the pure plan (only guests evacuated and living
elsewhere are destroyed, failed or unstarted evacuations left alone,
shared files never removed), the runner over a real store, the poller's
hook, and autostart turned off at agent start."""
import pytest

from agent.common.rpc.methods import AGENT, check_call
from agent.controller import hosts as hostsmod
from agent.controller import return_host, states
from agent.controller.db import Store, upgrade
from agent.hypervisor import domains

A, B = "aaaaaaaa-0000-4000-8000-000000000001", \
    "bbbbbbbb-0000-4000-8000-000000000002"
FACTS = {"vcpus": 8, "memory_mb": 4096, "disk_gb": 40, "domains": []}


def _mig(uuid, status, source="h1", storage="shared"):
    return {"uuid": f"m-{uuid}-{status}", "instance_uuid": uuid,
            "source_host": source, "dest_host": "h2", "status": status,
            "progress": {"storage": storage}}


def _inst(host="h2", storage="shared", vm_state=states.ACTIVE):
    return {"host": host, "storage": storage, "vm_state": vm_state}


# -- the plan (pure) ----------------------------------------------------------

def test_evacuated_and_living_elsewhere_is_destroyed_shared_files_kept():
    actions, waits = return_host.plan("h1", [_mig(A, "done")],
                                      {A: _inst()}, {A})
    assert waits == []
    assert actions == [{"uuid": A, "migration": f"m-{A}-done",
                        "destroy": True, "remove_local": False}]


def test_a_local_guest_rebuilt_elsewhere_loses_its_local_directory():
    actions, _ = return_host.plan("h1", [_mig(A, "done")],
                                  {A: _inst(storage="local")}, set())
    assert actions[0]["remove_local"] and not actions[0]["destroy"]


@pytest.mark.parametrize("status", ["failed", "error", "completed"])
def test_failed_or_finished_evacuations_are_left_alone(status):
    actions, waits = return_host.plan("h1", [_mig(A, status)],
                                      {A: _inst(host="h1")}, {A})
    assert actions == [] and waits == []


@pytest.mark.parametrize("status", ["accepted", "running"])
def test_an_evacuation_in_flight_keeps_the_host_out(status):
    actions, waits = return_host.plan("h1", [_mig(A, status)],
                                      {A: _inst(host="h1")}, {A})
    assert actions == [] and len(waits) == 1


def test_an_instance_the_store_says_lives_here_is_never_touched():
    actions, _ = return_host.plan("h1", [_mig(A, "done")],
                                  {A: _inst(host="h1")}, {A})
    assert actions == []


def test_only_the_newest_record_of_an_instance_counts():
    # Evacuated once (done), back, evacuation failed the second time.
    actions, _ = return_host.plan(
        "h1", [_mig(A, "failed"), _mig(A, "done")], {A: _inst(host="h1")},
        {A})
    assert actions == []


def test_deleted_meanwhile_still_loses_its_domain():
    actions, _ = return_host.plan(
        "h1", [_mig(A, "done", storage="local")],
        {A: _inst(storage="local", vm_state=states.DELETED)}, {A})
    assert actions[0]["destroy"] and actions[0]["remove_local"]


def test_stale_claims():
    allocs = [{"host": "h1", "consumer": A, "instance_uuid": A},
              {"host": "h1", "consumer": B, "instance_uuid": B},
              {"host": "h1", "consumer": "m1", "instance_uuid": A},
              {"host": "h2", "consumer": A, "instance_uuid": A}]
    migs = {"m1": {"uuid": "m1", "instance_uuid": A, "status": "failed",
                   "source_host": "h3", "dest_host": "h1"}}
    stale = return_host.stale_claims(
        "h1", allocs, {A: _inst(host="h2"), B: _inst(host="h1")}, migs)
    assert [a["consumer"] for a in stale] == [A, "m1"]
    # A move in progress to the host keeps the instance's claim there.
    migs["m1"]["status"] = "finished"
    stale = return_host.stale_claims(
        "h1", allocs, {A: _inst(host="h2"), B: _inst(host="h1")}, migs)
    assert stale == []


# -- the runner over a real store ---------------------------------------------

class Agent:
    def __init__(self):
        self.calls = []

    def __call__(self, host, method, timeout=None, **params):
        check_call(AGENT, method, params)
        self.calls.append((host, method, params.get("storage")))
        return {}


@pytest.fixture
def store(tmp_path):
    url = f"sqlite:///{tmp_path}/drover.db"
    upgrade(url)
    st = Store(url)
    for name in ("h1", "h2"):
        st.upsert_host(name, address=f"198.18.0.1{name[1]}", facts=FACTS)
    st.create_flavor("small", 1, 256, 1)
    st.create_image("img", "/store/img", "qcow2", 1 << 27, 1 << 24)
    yield st
    st.close()


def _evacuated(store, name, storage, status="done"):
    """An instance evacuated h1 -> h2 (or whose evacuation failed)."""
    inst = store.create_instance(name, "small", "img", storage=storage)
    store.claim("h1", inst["uuid"], 1, 256, 1)
    host = "h2" if status == "done" else "h1"
    if host == "h2":
        store.claim("h2", inst["uuid"], 1, 256, 1)
    mig = store.create_migration(inst["uuid"], "evacuation", "h1",
                                 dest_host="h2", status=status)
    inst = store.update_instance(inst["uuid"], host=host, task_state=None,
                                 vm_state=states.ACTIVE)
    return inst, mig


def test_run_cleans_the_evacuated_and_keeps_the_rest(store):
    shared, m1 = _evacuated(store, "s", "shared")
    local, m2 = _evacuated(store, "l", "local")
    kept, m3 = _evacuated(store, "k", "shared", status="failed")
    store._set_host("h1", state="fenced")        # FENCE's state, by hand
    agent = Agent()
    pending = return_host.run(store, agent, "h1",
                              [shared["uuid"], local["uuid"],
                               kept["uuid"]])
    assert pending == []
    touched = {p for p in agent.calls}
    assert ("h1", "instance.destroy", None) in touched
    assert ("h1", "instance.cleanup", "local") in touched
    # Nothing on shared storage, nothing of the guest that stayed.
    assert all(s != "shared" for _, _, s in agent.calls)
    assert len([c for c in agent.calls if c[1] == "instance.destroy"]) == 2
    assert store.get_migration(m1["uuid"])["status"] == "completed"
    assert store.get_migration(m2["uuid"])["status"] == "completed"
    assert store.get_migration(m3["uuid"])["status"] == "failed"
    assert [a["host"] for a in store.list_allocations(
        instance_uuid=shared["uuid"])] == ["h2"]
    assert [a["host"] for a in store.list_allocations(
        instance_uuid=kept["uuid"])] == ["h1"]
    assert store.get_host("h1")["state"] == "up"


def test_run_keeps_the_host_out_while_an_evacuation_runs(store):
    _evacuated(store, "r", "shared", status="running")
    store._set_host("h1", state="fenced")
    assert return_host.run(store, Agent(), "h1", [])
    assert store.get_host("h1")["state"] == "fenced"


def test_the_poller_reconciles_a_returning_host_before_up(store, mocker):
    inst, mig = _evacuated(store, "s", "shared")
    store._set_host("h1", state="fenced")
    manager = hostsmod.HostManager(store)
    agent = Agent()

    def call(host, method, timeout=None, **params):
        if method == "host.facts":
            return {**FACTS, "domains": [{"uuid": inst["uuid"],
                                          "state": "shutoff"}]}
        return agent(host, method, **params)
    mocker.patch.object(manager, "call", side_effect=call)
    mocker.patch.object(manager, "_subscribe")
    manager.poll_host("h1")
    assert ("h1", "instance.undefine", None) in agent.calls
    assert store.get_migration(mig["uuid"])["status"] == "completed"
    assert store.get_host("h1")["state"] == "up"


def test_a_fenced_host_that_misses_polls_stays_fenced(store, mocker):
    store._set_host("h1", state="fenced")
    manager = hostsmod.HostManager(store)
    mocker.patch.object(hostsmod.CONF.controller, "host_down_after", 0)
    manager._missed("h1", "no answer")
    assert store.get_host("h1")["state"] == "fenced"


# -- autostart off at agent start -------------------------------------------

def test_autostart_is_turned_off_on_drover_domains(mocker):
    ours, theirs = mocker.Mock(), mocker.Mock()
    ours.name.return_value, theirs.name.return_value = "instance-1", "other"
    ours.UUIDString.return_value = A
    for dom in (ours, theirs):
        dom.autostart.return_value = 1
    virconn = mocker.Mock()
    virconn.listAllDomains.return_value = [ours, theirs]
    conn = mocker.Mock()
    conn.call.side_effect = lambda fn, *args: fn(virconn, *args)
    assert domains.autostart_off(conn) == [A]
    ours.setAutostart.assert_called_once_with(0)
    theirs.setAutostart.assert_not_called()


def test_an_evacuation_done_is_in_progress_until_its_host_is_cleaned():
    """``host set --up`` (FENCE) is refused while one is (bug 1922053)."""
    assert states.migration_in_progress(states.MIG_DONE)
    assert not states.migration_in_progress(states.MIG_COMPLETED)
