"""The one admission path: what can be known before a task starts is
refused up front (exit 2, one line, nothing created); a busy instance is
refused; the API, the periodic jobs and the operations all go through it.
"""
import ast
import pathlib
import types

import pytest

from agent.common.errors import Conflict, InvalidInput, NotFound
from agent.controller import states
from agent.controller.admission import Admission
from agent.controller.db import Store, upgrade

AGENT = pathlib.Path(__file__).resolve().parents[2] / "agent"


class Engine:
    def __init__(self):
        self.started = []

    def start(self, task_id):
        self.started.append(task_id)

    def submit(self, kind, params, instance_uuid=None):
        return svc_store.task_create(kind, params, instance_uuid)


@pytest.fixture
def svc(tmp_path):
    global svc_store
    url = f"sqlite:///{tmp_path}/drover.db"
    upgrade(url)
    store = svc_store = Store(url)
    store.upsert_host("h1", "198.18.0.1", facts={"vcpus": 8,
                                                 "memory_mb": 8192,
                                                 "disk_gb": 100})
    store.create_flavor("s", 1, 256, 2)
    store.create_flavor("tiny", 1, 128, 1)
    store.create_image("img", "/images/img", "qcow2", 1 << 30, 1 << 20)
    store.create_aggregate("rack1", availability_zone="az1")
    s = types.SimpleNamespace(store=store, hosts=None, engine=Engine())
    s.admission = Admission(s)
    yield s
    store.close()


def _nothing_created(svc):
    assert svc.store.list_instances() == []
    assert svc.store.list_tasks() == []
    assert svc.engine.started == []


@pytest.mark.parametrize("args, message", [
    ({"availability_zone": "no-such-az"},
     "availability zone no-such-az does not exist"),
    ({"flavor": "no-such-flavor"}, "flavor no-such-flavor"),
    ({"image": "no-such-image"}, "image no-such-image"),
    ({"host": "no-such-host"}, "host no-such-host"),
])
def test_create_refuses_what_names_nothing_before_anything_exists(
        svc, args, message):
    request = {"flavor": "s", "image": "img", **args}
    with pytest.raises(InvalidInput, match=message) as err:
        svc.admission.create("vm1", **request)
    assert err.value.exit_code == 2
    _nothing_created(svc)


def test_known_zones_are_accepted(svc):
    for zone in ("az1", "nova"):
        inst, tid = svc.admission.create(f"vm-{zone}", "s", "img",
                                         availability_zone=zone)
        assert svc.engine.started[-1] == tid
        assert inst["task_id"] == tid


def _active(svc, name="vm1"):
    inst = svc.store.create_instance(name, "s", "img")
    return svc.store.update_instance(inst["uuid"], host="h1",
                                     vm_state=states.ACTIVE, task_state=None,
                                     power_state=states.RUNNING)


def test_a_disk_that_would_shrink_is_refused_up_front(svc):
    inst = _active(svc)
    with pytest.raises(InvalidInput, match="disks only grow"):
        svc.admission.submit("resize", inst["uuid"], flavor="tiny")
    with pytest.raises(InvalidInput, match="already has flavor s"):
        svc.admission.submit("resize", inst["uuid"], flavor="s")
    with pytest.raises(NotFound):
        svc.admission.submit("resize", inst["uuid"], flavor="nope")
    with pytest.raises(NotFound):
        svc.admission.submit("migrate", inst["uuid"], host="nope")
    assert svc.store.list_tasks() == []
    assert svc.store.get_instance(inst["uuid"])["task_state"] is None


def test_confirm_without_a_finished_move_is_refused_up_front(svc):
    inst = _active(svc)
    svc.store.update_instance(inst["uuid"], vm_state=states.RESIZED)
    with pytest.raises(Conflict, match="no migration waiting"):
        svc.admission.submit("resize-confirm", inst["uuid"])
    assert svc.store.list_tasks() == []


def test_a_busy_instance_is_refused_and_the_owner_recorded(svc):
    inst = _active(svc)
    got, tid = svc.admission.submit("stop", inst["uuid"])
    assert got["task_id"] == tid and got["task_state"] == "powering-off"
    assert svc.store.task_get(tid)["params"]["action"] == "stop"
    with pytest.raises(Conflict, match=r"busy \(stop in progress\)"):
        svc.admission.submit("reboot", inst["uuid"])
    with pytest.raises(Conflict, match="busy"):
        svc.admission.submit("delete", inst["uuid"])
    assert [a["action"] for a in svc.store.list_actions(inst["uuid"])] == \
        ["stop"]


def test_a_state_the_rule_refuses_is_one_line(svc):
    inst = _active(svc)
    with pytest.raises(Conflict, match="Cannot 'start' instance vm1 while "
                                       "it is in vm_state active"):
        svc.admission.submit("start", inst["uuid"])


def test_host_operations_check_their_input_and_run_one_at_a_time(svc):
    with pytest.raises(InvalidInput, match="--max-parallel must be >= 1"):
        svc.admission.submit_host("drain", "h1", max_parallel=0)
    with pytest.raises(NotFound):
        svc.admission.submit_host("drain", "nope")
    svc.admission.submit_host("drain", "h1", max_parallel=2)
    with pytest.raises(Conflict, match="already in progress"):
        svc.admission.submit_host("drain", "h1")


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


def test_no_operation_or_periodic_job_reaches_up_into_the_api():
    below_api = list((AGENT / "controller" / "ops").glob("*.py")) + [
        AGENT / "controller" / "periodic.py",
        AGENT / "controller" / "admission.py"]
    for path in below_api:
        for module, names in _imports(path):
            assert not module.startswith("agent.controller.api"), path
            assert not (module == "agent.controller" and "api" in names), \
                path


def test_nothing_imports_a_private_name_from_another_module():
    for path in AGENT.rglob("*.py"):
        for module, names in _imports(path):
            if module.startswith("agent."):
                private = [n for n in names if n.startswith("_")]
                assert not private, (path, module, private)
