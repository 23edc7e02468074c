"""A host that is down: what its instances show (host_status, power
state), why it is down, deleting its instances (a clean-up recorded for
its return), the clean-up when it answers again, and drain refused."""
import itertools

import pytest

from agent.common.errors import Conflict, DroverError
from agent.conf import CONF
from agent.controller import host_cleanups, states
from agent.controller import hosts as hostsmod
from agent.controller.api import live as live_api
from agent.controller.api.views import host_row, server_detail, server_row
from agent.controller.admission import Admission
from agent.controller.daemon import Services
from agent.controller.db import Store, upgrade
from agent.controller.ops import WORKFLOWS, drain
from agent.controller.tasks.actionlog import ActionTaskLog
from agent.controller.tasks.engine import TaskEngine
from agent.transport.errors import HostKeyRejected, HostUnreachable

FACTS = {"vcpus": 8, "memory_mb": 4096, "disk_gb": 40, "domains": []}
UP = {"name": "h1", "state": "up", "enabled": True,
      "last_seen": "2026-12-01T07:00:00Z"}


# -- host_status and the power state shown (pure) -----------------------------

@pytest.mark.parametrize("host_name, host, status", [
    (None, None, ""),
    ("h1", UP, "UP"),
    ("h1", dict(UP, state="down"), "DOWN"),
    ("h1", dict(UP, state="down", enabled=False), "DOWN"),
    ("h1", dict(UP, enabled=False), "MAINTENANCE"),
    ("h1", dict(UP, state="down", last_seen=None), "UNKNOWN"),
    ("h1", None, "UNKNOWN"),
    ("h1", dict(UP, state="weird"), "UNKNOWN"),
])
def test_host_status_as_nova_shows_it(host_name, host, status):
    assert states.host_status(host_name, host) == status


@pytest.mark.parametrize("host_status, shown", [
    ("UP", "Running"), ("MAINTENANCE", "Running"), ("", "Running"),
    ("DOWN", "unknown"), ("UNKNOWN", "unknown")])
def test_power_state_is_unknown_while_the_host_cannot_be_asked(host_status,
                                                               shown):
    assert states.shown_power_state(states.RUNNING, host_status) == shown


# -- over a real store --------------------------------------------------------

class FakeAgents:
    """Records agent calls; ``unreachable``: hosts whose calls raise
    HostUnreachable, ``fail``: a method that raises DroverError."""

    def __init__(self):
        self.calls = []
        self.unreachable = set()
        self.fail = None

    def call(self, host, method, timeout=None, **params):
        if host in self.unreachable:
            raise HostUnreachable(f"cannot connect to {host}: Connection "
                                  "refused\nsecond line")
        self.calls.append((host, method, params.get("uuid")))
        if method == self.fail:
            raise DroverError(f"{method} refused on {host}")
        if method == "host.facts":
            return FACTS
        return {}


@pytest.fixture
def svc(tmp_path):
    url = f"sqlite:///{tmp_path}/drover.db"
    upgrade(url)
    store = Store(url)
    for name in ("h1", "h2"):
        store.upsert_host(name, address=f"198.18.0.1{name[1]}", facts=FACTS)
    store.create_flavor("small", 1, 1024, 1)
    store.create_image("img", "/store/img", "qcow2", 1 << 27, 1 << 24)
    s = Services(store=store, hosts=FakeAgents())
    s.engine = TaskEngine(ActionTaskLog(store), WORKFLOWS, s)
    s.admission = Admission(s)
    yield s
    store.close()


def _placed(svc, name="vm", host="h1", storage="local"):
    inst = svc.store.create_instance(name, "small", "img", storage=storage)
    svc.store.claim(host, inst["uuid"], 1, 1024, 1)
    return svc.store.update_instance(
        inst["uuid"], host=host, vm_state=states.ACTIVE, task_state=None,
        power_state=states.RUNNING)


def _delete(svc, inst):
    _, tid = svc.admission.submit("delete", inst["uuid"])
    svc.engine.wait(tid)
    return svc.store.task_get(tid)


def test_instances_of_a_down_host_show_it(svc):
    inst = _placed(svc)
    svc.store.mark_host_down("h1")
    inst = svc.store.get_instance(inst["uuid"])
    detail = server_detail(inst)
    assert detail["host_status"] == "DOWN"
    assert detail["power_state"] == "unknown"
    assert detail["status"] == "ACTIVE"
    # The store keeps what libvirt last said.
    assert inst["power_state"] == states.RUNNING
    row = server_row(svc.store.list_instances()[0])
    assert row["Host Status"] == "DOWN"
    svc.store.mark_host_up("h1")
    assert server_detail(svc.store.get_instance(inst["uuid"]))[
        "power_state"] == "Running"


def _manager(svc, mocker):
    manager = hostsmod.HostManager(svc.store)
    mocker.patch.object(manager, "call", side_effect=svc.hosts.call)
    mocker.patch.object(manager, "_subscribe")
    return manager


@pytest.fixture
def down_at_once(mocker):
    """Every poll is host_down_after seconds after the one before."""
    clock = itertools.count(0, CONF.controller.host_down_after)
    mocker.patch.object(hostsmod, "time").monotonic.side_effect = \
        lambda: next(clock)


def test_a_missed_poll_says_why_until_the_host_answers(svc, mocker,
                                                       down_at_once):
    manager = _manager(svc, mocker)
    seen = svc.store.get_host("h1")["last_seen"]
    svc.hosts.unreachable.add("h1")
    manager.poll_host("h1")
    host = svc.store.get_host("h1")
    assert host["state"] == "down"
    assert host["down_reason"] == "cannot connect to h1: Connection refused"
    assert host["last_seen"] == seen
    row = host_row(host, "nova", 0)
    assert row["Down Reason"] == host["down_reason"]
    assert row["Last Seen"] == seen
    svc.hosts.unreachable.clear()
    manager.poll_host("h1")
    host = svc.store.get_host("h1")
    assert host["state"] == "up" and host["down_reason"] is None


def test_a_changed_host_key_is_the_reason(svc, mocker, down_at_once):
    manager = _manager(svc, mocker)
    mocker.patch.object(manager, "call", side_effect=HostKeyRejected(
        "host key of h1 (198.18.0.11:22) does not match /k: expected A, "
        "got B; refusing to connect"))
    manager.poll_host("h1")
    assert svc.store.get_host("h1")["down_reason"].startswith(
        "host key of h1 (198.18.0.11:22) does not match")


# -- delete on a down host ----------------------------------------------------

def test_delete_on_a_down_host_records_a_cleanup_and_calls_nothing(svc):
    inst = _placed(svc)
    svc.store.mark_host_down("h1")
    task = _delete(svc, inst)
    assert task["state"] == "done"
    assert svc.hosts.calls == []
    assert svc.store.list_instances() == []
    assert svc.store.get_instance(inst["uuid"], deleted=True)[
        "vm_state"] == states.DELETED
    assert svc.store.list_allocations(consumer=inst["uuid"]) == []
    [rec] = svc.store.list_cleanups(host="h1")
    assert (rec["instance_uuid"], rec["storage"], rec["remove"]) == (
        inst["uuid"], "local", ["domain", "files"])


def test_delete_with_an_unreachable_agent_finishes(svc):
    inst = _placed(svc, storage="shared")
    svc.hosts.unreachable.add("h1")          # still up in the store
    task = _delete(svc, inst)
    assert task["state"] == "done"
    assert svc.store.list_instances() == []
    assert svc.store.list_allocations(consumer=inst["uuid"]) == []
    [rec] = svc.store.list_cleanups(host="h1")
    assert rec["storage"] == "shared"
    assert rec["reason"] == "cannot connect to h1: Connection refused"


def test_delete_on_a_live_host_leaves_no_cleanup(svc):
    inst = _placed(svc)
    assert _delete(svc, inst)["state"] == "done"
    assert [m for _, m, _ in svc.hosts.calls] == [
        "instance.destroy", "instance.undefine", "instance.cleanup"]
    assert svc.store.list_cleanups() == []


# -- the clean-up when the host is back ---------------------------------------

def _rec(remove=("domain", "files"), host="h1"):
    return {"host": host, "remove": list(remove)}


@pytest.mark.parametrize("inst, what", [
    (None, ("domain", "files")),
    ({"vm_state": "deleted", "task_state": None, "host": "h1"},
     ("domain", "files")),
    ({"vm_state": "active", "task_state": None, "host": "h1"}, ()),
    ({"vm_state": "active", "task_state": None, "host": "h2"}, ("domain",)),
    ({"vm_state": "active", "task_state": None, "host": None}, ("domain",)),
    ({"vm_state": "active", "task_state": "deleting", "host": "h1"},
     host_cleanups.WAIT),
])
def test_cleanup_plan_never_touches_what_lives_there(inst, what):
    assert host_cleanups.plan(_rec(), inst) == what


def _mig(status, source="h2", dest="h1"):
    return {"status": status, "source_host": source, "dest_host": dest}


_ELSEWHERE = {"vm_state": "active", "task_state": None, "host": "h2",
              "storage": "local"}


@pytest.mark.parametrize("inst, migrations, what", [
    # A boot that never finished: nothing of it is data.
    ({"vm_state": "error", "task_state": None, "host": None,
      "launched_at": None}, [], ("domain", "files")),
    ({"vm_state": "error", "task_state": None, "host": None,
      "launched_at": "2026-01-01"}, [], ("domain",)),
    # A failed move's copy: removed once the instance's own disk is seen.
    (_ELSEWHERE, [_mig("error")], ("domain", host_cleanups.COPY)),
    (_ELSEWHERE, [_mig("failed")], ("domain", host_cleanups.COPY)),
    # ... not if the instance lived on the host since, or the move went
    # the other way, or the storage is shared (the copy is its own disk).
    (_ELSEWHERE, [_mig("completed"), _mig("error")], ("domain",)),
    (_ELSEWHERE, [_mig("error", "h1", "h2")], ("domain",)),
    (_ELSEWHERE, [_mig("confirmed")], ("domain",)),
    # The source's old directory after a completed live migration.
    (_ELSEWHERE, [_mig("completed", "h1", "h2")],
     ("domain", host_cleanups.COPY)),
    (dict(_ELSEWHERE, storage="shared"), [_mig("error")], ("domain",)),
])
def test_cleanup_plan_removes_files_that_cannot_be_the_only_copy(
        inst, migrations, what):
    assert host_cleanups.plan(_rec(), inst, migrations) == what


def test_return_removes_a_deleted_instance_only(svc, mocker):
    gone = _placed(svc, "gone")
    kept = _placed(svc, "kept")
    svc.store.mark_host_down("h1")
    _delete(svc, gone)
    # A stray record for an instance that lives on h1 (never acted on).
    svc.store.record_cleanup("h1", kept["uuid"], "local", ["domain"])
    manager = _manager(svc, mocker)
    manager.poll_host("h1")
    assert svc.store.get_host("h1")["state"] == "up"
    removed = [(m, u) for _, m, u in svc.hosts.calls if m != "host.facts"]
    assert removed == [("instance.destroy", gone["uuid"]),
                       ("instance.undefine", gone["uuid"]),
                       ("instance.cleanup", gone["uuid"])]
    assert svc.store.list_cleanups() == []
    # Twice: nothing more is done.
    svc.hosts.calls.clear()
    manager.poll_host("h1")
    assert [m for _, m, _ in svc.hosts.calls] == ["host.facts"]


def test_cleanups_run_before_the_host_counts_as_up(svc, mocker):
    gone = _placed(svc, "gone")
    svc.store.mark_host_down("h1")
    _delete(svc, gone)
    svc.hosts.fail = "instance.undefine"
    manager = _manager(svc, mocker)
    manager.poll_host("h1")
    host = svc.store.get_host("h1")
    assert host["state"] == "down"
    assert host["down_reason"].startswith("clean-up pending: instance ")
    assert len(svc.store.list_cleanups()) == 1
    svc.hosts.fail = None
    manager.poll_host("h1")
    assert svc.store.get_host("h1")["state"] == "up"
    assert svc.store.list_cleanups() == []


def test_a_host_unreachable_again_keeps_its_cleanups(svc):
    gone = _placed(svc, "gone")
    svc.store.mark_host_down("h1")
    _delete(svc, gone)
    svc.hosts.unreachable.add("h1")
    with pytest.raises(HostUnreachable):
        host_cleanups.run(svc.store, svc.hosts.call, "h1")
    assert len(svc.store.list_cleanups()) == 1


# -- drain of a down host -----------------------------------------------------

def test_drain_of_a_down_host_is_refused_pointing_to_evacuation(svc):
    svc.store.mark_host_down("h1")
    with pytest.raises(Conflict) as err:
        drain.check_host(svc.store.get_host("h1"))
    assert "evacuation" in str(err.value)
    assert len(str(err.value).splitlines()) == 1
    with pytest.raises(Conflict):
        live_api.host_drain(svc, "h1")
    assert svc.store.get_host("h1")["enabled"]
    drain.check_host(svc.store.get_host("h2"))     # up: no refusal


def test_drain_task_refuses_a_host_that_went_down_meanwhile(svc):
    svc.store.mark_host_down("h1")
    tid = svc.engine.run_sync(drain.KIND, {"host": "h1", "max_parallel": 1})
    task = svc.store.task_get(tid)
    assert task["state"] == "failed" and "evacuation" in task["error"]
    assert svc.store.get_host("h1")["enabled"]


def test_drain_that_finds_its_host_down_starts_no_more(svc):
    from agent.controller.tasks.workflow import Context
    inst = _placed(svc)
    svc.store.mark_host_down("h1")
    ctx = Context(task_id=0, params={"host": "h1", "max_parallel": 1},
                  services=svc)
    [row] = drain.migrate_all(ctx)["report"]
    assert (row["Server"], row["Result"]) == (inst["name"], "left behind")
    assert "evacuation" in row["Reason"]
    assert svc.store.list_tasks(instance_uuid=inst["uuid"]) == []
