"""drover fleet audit: each kind of finding on the simulated fleet, made
behind drover's back the way an operator (or a bug) would; a clean fleet
after boots and moves; the CLI's output and exit code."""
import json
import os
import uuid as uuidlib

import pytest

from agent.cli.main import main as cli_main
from agent.controller import api, audit
from agent.host import facts
from agent.common.rpc.server import RpcServer
from agent.sim.fleet import ControllerCrash
from rpc_helpers import sock_dir  # noqa: F401  (a fixture)
from sim_helpers import SimLab


@pytest.fixture
def lab(tmp_path):
    lab = SimLab(tmp_path)
    for name, host in (("vm1", "h1"), ("vm2", "h2")):
        assert lab.boot(name, host=host)["state"] == "done"
    yield lab
    lab.close()


def kinds(lab):
    return sorted((f["kind"], f["host"], f["instance"]) for f in lab.audit())


def _spec(lab, uuid, storage="local"):
    return {"uuid": uuid, "name": "x", "vcpus": 1, "memory_mib": 256,
            "disk_gb": 1, "mac": "52:54:00:00:00:01", "storage": storage,
            "flavor": "small", "metadata": {}}


def _behind_drovers_back(lab, host, method, **params):
    """An agent call the controller did not make (an operator's virsh)."""
    return lab.fleet.agents[host].call(method, **params)


def _prepare(lab, host, uuid, storage="local"):
    image = lab.store.get_image("img")["uuid"]
    lab.fleet.host(host).images.add(image)      # as the operator copied it
    _behind_drovers_back(lab, host, "instance.prepare", uuid=uuid,
                         storage=storage,
                         image_path=f"/var/lib/drover/images/{image}",
                         image_format="qcow2", disk_gb=1)


def test_clean_after_boots_and_moves(lab):
    assert lab.audit() == []
    assert lab.op("migrate", "vm1", host="h3")["state"] == "done"
    assert lab.audit() == []        # VERIFY_RESIZE: the source's copy is owned
    assert lab.op("confirm", "vm1")["state"] == "done"
    assert lab.op("resize", "vm2", flavor="big", host="h1")["state"] == "done"
    assert lab.op("revert", "vm2")["state"] == "done"
    assert lab.op("live", "vm2", host="h3")["state"] == "done"
    assert lab.boot("vm3", storage="shared")["state"] == "done"
    assert lab.op("live", "vm3")["state"] == "done"
    assert lab.audit() == []


def test_orphan_domain(lab):
    stray = str(uuidlib.uuid4())
    _prepare(lab, "h3", stray)
    _behind_drovers_back(lab, "h3", "instance.define", spec=_spec(lab, stray))
    assert kinds(lab) == [(audit.ORPHAN_DIRECTORY, "h3", stray),
                          (audit.ORPHAN_DOMAIN, "h3", stray)]


def test_missing_domain(lab):
    uuid = lab.uuid("vm1")
    for method in ("instance.destroy", "instance.undefine"):
        _behind_drovers_back(lab, "h1", method, uuid=uuid)
    assert kinds(lab) == [(audit.MISSING_DOMAIN, "h1", "vm1")]


def test_running_in_two_places(lab):
    """Local storage: nothing stops a second copy started on another
    host (on shared storage QEMU's image lock would)."""
    uuid = lab.uuid("vm1")
    _prepare(lab, "h2", uuid)
    _behind_drovers_back(lab, "h2", "instance.define", spec=_spec(lab, uuid))
    _behind_drovers_back(lab, "h2", "instance.start", uuid=uuid)
    assert kinds(lab) == [(audit.ORPHAN_DIRECTORY, "h2", "vm1"),
                          (audit.ORPHAN_DOMAIN, "h2", "vm1"),
                          (audit.RUNNING_TWICE, "h1,h2", "vm1")]


def test_running_elsewhere_than_the_database_says(lab):
    uuid = lab.uuid("vm1")
    _behind_drovers_back(lab, "h1", "instance.destroy", uuid=uuid)
    _prepare(lab, "h3", uuid)
    _behind_drovers_back(lab, "h3", "instance.define", spec=_spec(lab, uuid))
    _behind_drovers_back(lab, "h3", "instance.start", uuid=uuid)
    assert (audit.RUNNING_ELSEWHERE, "h3", "vm1") in kinds(lab)


def test_shared_disk_cannot_run_twice(tmp_path):
    """The sim holds QEMU's image lock: a second start of a shared disk
    fails, as it does on the lab."""
    lab = SimLab(tmp_path)
    try:
        assert lab.boot("vm1", host="h1", storage="shared")["state"] == \
            "done"
        uuid = lab.uuid("vm1")
        _behind_drovers_back(lab, "h2", "instance.define",
                             spec=_spec(lab, uuid, "shared"))
        from agent.common.errors import DroverError
        with pytest.raises(DroverError, match='Failed to get "write" lock'):
            _behind_drovers_back(lab, "h2", "instance.start", uuid=uuid)
        assert kinds(lab) == [(audit.ORPHAN_DOMAIN, "h2", "vm1")]
    finally:
        lab.close()


def test_claims_that_do_not_match(lab):
    stray = str(uuidlib.uuid4())
    lab.store.claim("h3", stray, 1, 256, 1)
    lab.store.release(lab.uuid("vm2"))
    lab.store.claim("h3", lab.uuid("vm1"), 1, 256, 1,
                    instance_uuid=lab.uuid("vm1"))
    assert kinds(lab) == [(audit.CLAIM_WRONG_HOST, "h3", "vm1"),
                          (audit.MISSING_CLAIM, "h2", "vm2"),
                          (audit.ORPHAN_CLAIM, "h3", stray)]


def test_orphan_and_missing_directories(lab):
    _behind_drovers_back(lab, "h1", "instance.cleanup", uuid=lab.uuid("vm1"),
                         storage="local")
    stray, shared = str(uuidlib.uuid4()), str(uuidlib.uuid4())
    _prepare(lab, "h2", stray)
    _prepare(lab, "h2", shared, storage="shared")
    # A deleted instance's directory left behind is no one's either.
    deleted = lab.store.create_instance("gone", "small", "img")
    _prepare(lab, "h3", deleted["uuid"])
    lab.store.mark_instance_deleted(deleted["uuid"])
    found = kinds(lab)
    assert found == [(audit.MISSING_DIRECTORY, "h1", "vm1"),
                     (audit.ORPHAN_DIRECTORY, "h2", stray),
                     (audit.ORPHAN_DIRECTORY, "h3", deleted["uuid"]),
                     (audit.ORPHAN_DIRECTORY, audit.SHARED, shared)]


def test_unreachable_host(lab):
    lab.fleet.cut("h3")
    found = lab.audit()
    assert [(f["kind"], f["host"]) for f in found] == [(audit.UNREACHABLE,
                                                        "h3")]
    assert "lost" in found[0]["detail"]


def test_a_move_in_progress_owns_its_directories_and_claims(lab):
    """Mid-copy (the controller died there): <uuid>_resize on the source,
    the copy on the destination, the migration's claim: all owned."""
    lab.fleet.at_step("copy", lambda f: (_ for _ in ()).throw(
        ControllerCrash()), when="done")
    assert lab.op("migrate", "vm1", host="h3") is None
    assert ("local/h1", "vm1_resize") in lab.directories()
    assert ("local/h3", "vm1") in lab.directories()
    assert lab.audit() == []


def test_a_leftover_resize_directory_without_its_migration():
    db = {"instances": [{"uuid": "11111111-1111-1111-1111-111111111111",
                         "name": "vm1", "host": "h2", "storage": "local",
                         "vm_state": "active", "task_state": None}],
          "allocations": [{"host": "h2", "consumer":
                           "11111111-1111-1111-1111-111111111111",
                           "instance_uuid": None}],
          "migrations": [], "hosts": ["h1", "h2"]}
    uuid = db["instances"][0]["uuid"]
    reports = {"h1": {"domains": [], "directories": {
                   "local": [uuid + "_resize", "not-an-instance"]}},
               "h2": {"domains": [{"uuid": uuid, "state": "running"}],
                      "directories": {"local": [uuid]}}}
    assert [(f["kind"], f["host"], f["detail"])
            for f in audit.audit(db, reports)] == [
        (audit.ORPHAN_DIRECTORY, "h1", f"local {uuid}_resize")]
    # While its migration waits for confirm, the source's copy is owned.
    db["migrations"] = [{"uuid": "m", "instance_uuid": uuid,
                         "type": "migration", "status": "finished",
                         "source_host": "h1", "dest_host": "h2"}]
    assert audit.audit(db, reports) == []


def test_agent_inventory_lists_instance_directories(tmp_path, mocker):
    uuid = str(uuidlib.uuid4())
    for name in (uuid, uuid + "_resize", "_base", ".drover-probe-1"):
        os.mkdir(tmp_path / name)
    (tmp_path / (str(uuidlib.uuid4()))).write_text("a file, not a dir")
    assert facts.instance_dirs(str(tmp_path)) == [uuid, uuid + "_resize"]
    assert facts.instance_dirs(str(tmp_path / "absent")) == []
    dom = mocker.Mock(uuid=uuid, state="running")
    dom.name = "instance-x"
    mocker.patch.object(facts.domains, "list_domains", return_value=[dom])
    from agent.conf import CONF
    CONF.set_override("instances_path", str(tmp_path), "agent")
    try:
        out = facts.inventory(conn=None)
        leaving = facts.inventory(conn=None, leaving={uuid})
    finally:
        CONF.clear_override("instances_path", "agent")
    assert out["domains"] == [{"uuid": uuid, "name": "instance-x",
                               "state": "running", "leaving": False}]
    assert leaving["domains"][0]["leaving"] is True
    assert out["directories"]["local"] == [uuid, uuid + "_resize"]


def test_cli_exit_code_and_json(lab, sock_dir, capsys):  # noqa: F811
    path = os.path.join(sock_dir, "api.sock")
    server = RpcServer(path)
    api.register(server, lab.svc)
    server.start()
    try:
        argv = ["--controller-socket", path, "fleet", "audit"]
        assert cli_main(argv) == 0
        assert "nothing found" in capsys.readouterr().out
        lab.store.release(lab.uuid("vm2"))
        assert cli_main(argv + ["-f", "json"]) == 1
        rows = json.loads(capsys.readouterr().out)
        assert rows == [{"Kind": audit.MISSING_CLAIM, "Host": "h2",
                         "Instance": "vm2", "Detail": "no claim on its host"}]
    finally:
        server.stop()


def test_a_leaving_copy_is_not_reported():
    """A live migration's source copy that libvirt still stops after the
    switch-over (the agent marks it leaving) is no finding; the same copy
    unmarked is."""
    uuid = str(uuidlib.uuid4())
    db = {"instances": [{"uuid": uuid, "name": "vm", "host": "h2",
                         "storage": "shared", "vm_state": "active",
                         "task_state": None}],
          "allocations": [{"host": "h2", "consumer": uuid,
                           "instance_uuid": uuid}],
          "migrations": [], "hosts": ["h1", "h2"]}

    def reports(leaving):
        return {"h1": {"domains": [{"uuid": uuid, "name": "x",
                                    "state": "paused", "leaving": leaving}],
                       "directories": {}},
                "h2": {"domains": [{"uuid": uuid, "name": "x",
                                    "state": "running"}],
                       "directories": {}}}
    assert audit.audit(db, reports(True)) == []
    assert {f["kind"] for f in audit.audit(db, reports(False))} == {
        audit.ORPHAN_DOMAIN, audit.RUNNING_TWICE}
