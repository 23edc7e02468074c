"""Every operation, failed in turn at each of its agent calls by an
exception with no message (``TimeoutError()``): the task ends with a
reason that says what it was, and the instance is never left busy (no
owning task, no task_state), so the next operation is accepted."""
import hashlib
import shutil
import types

import pytest

from agent.common.rpc.methods import AGENT, check_call
from agent.controller import states
from agent.controller.admission import Admission
from agent.controller.db import Store, upgrade
from agent.controller.ops import OPERATIONS, WORKFLOWS, steps
from agent.controller.tasks.actionlog import ActionTaskLog
from agent.controller.tasks.engine import TaskEngine

FACTS = {"vcpus": 8, "memory_mb": 8192, "disk_gb": 100,
         "hypervisor_type": "QEMU", "cpu_model": "qemu64",
         "libvirt_version": "9.0.0", "qemu_version": "7.2.0"}
COMPLETED = {"status": "completed", "reason": None, "migration_uuid": None,
             "elapsed": 1.0, "final_downtime_ms": 5, "progress": {}}
ANSWERS = {
    "move.power_off": {"result": "shutdown"},
    "instance.stop": {"result": "shutdown"},
    "instance.info": {"state": "running"},
    "storage.probe_write": {"name": ".drover-probe-1"},
    "storage.probe_check": {"found": True},
    "move.base": {"path": "/var/lib/drover/instances"},
    "move.copy_start": {"state": "done", "percent": 100.0, "result": {}},
    "migration.start": {"created_at": 1.0},
    "migration.wait": COMPLETED,
    "live.disk_facts": {},
    "snapshot.create": {"path": "/i/snapshot.qcow2", "size": 4,
                        "virtual_size": 1 << 30, "method": "live",
                        "seconds": 0.1,
                        "sha256": hashlib.sha256(b"snap").hexdigest()},
}


class Agents:
    """Answers like healthy agents, except that the ``fail_at``-th call
    raises TimeoutError() (no message)."""

    def __init__(self, fail_at=None):
        self.fail_at, self.count = fail_at, 0

    def call(self, host, method, timeout=None, **params):
        check_call(AGENT, method, params)
        self.count += 1
        if self.count == self.fail_at:
            raise TimeoutError()
        return ANSWERS.get(method, {})

    def download(self, host, remote_path, local_path):
        with open(local_path, "wb") as f:
            f.write(b"snap")
        return {"size": 4, "sha256": hashlib.sha256(b"snap").hexdigest()}


@pytest.fixture(scope="module")
def schema(tmp_path_factory):
    """A database at the current schema, copied for each run."""
    path = tmp_path_factory.mktemp("schema") / "drover.db"
    upgrade(f"sqlite:///{path}")
    return path


def _world(tmp_path, agents, mocker, schema):
    shutil.copy(schema, tmp_path / "drover.db")
    store = Store(f"sqlite:///{tmp_path}/drover.db")
    for name in ("h1", "h2"):
        store.upsert_host(name, f"198.18.0.{name[1]}", facts=FACTS)
    store.create_flavor("s", 1, 256, 1)
    store.create_flavor("b", 2, 512, 3)
    store.create_image("img", "/images/img", "qcow2", 1 << 30, 1 << 20)
    mocker.patch.object(steps.images, "ensure_on_host", return_value="/img")
    mocker.patch.object(steps.images, "store_path",
                        lambda image_uuid: tmp_path / image_uuid)
    svc = types.SimpleNamespace(store=store, hosts=agents)
    svc.engine = TaskEngine(ActionTaskLog(store), WORKFLOWS, svc,
                            max_workers=1)
    svc.admission = Admission(svc)
    return svc


def _active(svc, vm_state=states.ACTIVE, power=states.RUNNING):
    inst = svc.store.create_instance("vm1", "s", "img")
    svc.store.claim("h1", inst["uuid"], 1, 256, 1)
    return svc.store.update_instance(inst["uuid"], host="h1",
                                     vm_state=vm_state, task_state=None,
                                     power_state=power)


def _resized(svc):
    inst = _active(svc, vm_state=states.RESIZED)
    mig = svc.store.create_migration(
        inst["uuid"], "resize", "h1", "h2", status=states.MIG_FINISHED,
        old_flavor=inst["flavor"], new_flavor=inst["flavor"])
    svc.store.update_migration(mig["uuid"],
                               progress={"old_vm_state": states.ACTIVE})
    svc.store.claim("h2", mig["uuid"], 1, 256, 1,
                    instance_uuid=inst["uuid"])
    return inst


def _on_fenced_host(svc):
    inst = _active(svc)
    svc.store._set_host("h1", state="fenced")     # FENCE's state, by hand
    return inst


def _shelved(svc):
    inst = svc.store.create_instance("vm1", "s", "img")
    image = steps.images.new_snapshot(svc.store, "vm1-shelved", inst)
    with open(image["path"], "wb") as f:
        f.write(b"snap")
    svc.store.update_image(image["uuid"], status="active", size=4,
                           checksum=hashlib.sha256(b"snap").hexdigest())
    return svc.store.update_instance(
        inst["uuid"], vm_state=states.SHELVED_OFFLOADED, task_state=None,
        shelved_image_uuid=image["uuid"])


# operation -> (set-up, parameters)
CASES = {
    "create": (None, {}),
    "delete": (_active, {}),
    "stop": (_active, {}),
    "start": (lambda svc: _active(svc, states.STOPPED, states.SHUTDOWN), {}),
    "reboot": (_active, {"hard": True}),
    "migrate": (_active, {}),
    "resize": (_active, {"flavor": "b"}),
    "resize-confirm": (_resized, {}),
    "resize-revert": (_resized, {}),
    "live-migrate": (_active, {}),
    "evacuate": (_on_fenced_host, {"rebuild": True}),
    "rescue": (_active, {}),
    "unrescue": (lambda svc: _active(svc, states.RESCUED), {}),
    "image-create": (_active, {"image_name": "snap"}),
    "shelve": (_active, {}),
    "unshelve": (_shelved, {}),
    "ha-restart": (lambda svc: _active(svc, states.ACTIVE, states.CRASHED),
                   {"reason": "crashed"}),
    "ha-relocate": (lambda svc: _active(svc, states.ACTIVE, states.SHUTDOWN),
                    {"reason": "crashed again"}),
}


def _run(svc, operation):
    setup, params = CASES[operation]
    if setup is None:
        inst, tid = svc.admission.create("vm1", "s", "img")
    else:
        inst, tid = svc.admission.submit(operation, setup(svc)["uuid"],
                                         **params)
    svc.engine.wait(tid)
    return inst["uuid"], svc.store.task_get(tid)


def test_every_instance_operation_has_a_case():
    assert set(CASES) == {n for n, op in OPERATIONS.items()
                          if op.rule is not None}


def _calls(tmp_path, mocker, schema, operation):
    agents = Agents()
    svc = _world(tmp_path / "count", agents, mocker, schema)
    _, task = _run(svc, operation)
    assert task["state"] == "done", task
    svc.engine.shutdown()
    return agents.count


@pytest.mark.parametrize("operation", sorted(CASES))
def test_an_empty_message_failure_never_leaves_the_instance_busy(
        tmp_path, mocker, schema, operation):
    (tmp_path / "count").mkdir()
    total = _calls(tmp_path, mocker, schema, operation)
    assert total > 0
    for k in range(1, total + 1):
        run_dir = tmp_path / f"k{k}"
        run_dir.mkdir()
        svc = _world(run_dir, Agents(fail_at=k), mocker, schema)
        uuid, task = _run(svc, operation)
        assert task["state"] == "failed", (k, task)
        assert "TimeoutError" in task["error"], (k, task)
        inst = svc.store.get_instance(uuid, deleted=True)
        assert inst["task_id"] is None, (k, inst)
        assert inst["task_state"] is None, (k, inst)
        if inst["vm_state"] != states.DELETED:
            # Not busy: the next operation is admitted.
            _, tid = svc.admission.submit("delete", uuid)
            svc.engine.wait(tid)
        svc.engine.shutdown()
