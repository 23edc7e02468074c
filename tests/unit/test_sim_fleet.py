"""The simulated fleet itself: it behaves like the hosts it stands for,
so that a workflow test cannot pass on something a real host refuses."""
import time

import pytest

from agent.common.errors import Conflict, DroverError, NotFound
from agent.transport.errors import AgentError, HostUnreachable
from sim_helpers import SimLab


@pytest.fixture
def lab(tmp_path):
    lab = SimLab(tmp_path, hosts=("h1", "h2"))
    assert lab.boot("vm1", host="h1")["state"] == "done"
    yield lab
    lab.close()


def call(lab, host, method, **params):
    return lab.svc.hosts.call(host, method, **params)


def test_errors_cross_the_wire_as_the_agents(lab):
    with pytest.raises(NotFound, match="no domain"):
        call(lab, "h2", "instance.info", uuid=lab.uuid("vm1"))
    with pytest.raises(AgentError, match="TypeError"):
        call(lab, "h1", "instance.start", uuid=lab.uuid("vm1"), bogus=1)
    info = call(lab, "h1", "instance.info", uuid=lab.uuid("vm1"))
    assert info["state"] == "running" and info["memory_mib"] == 256


def test_a_domain_without_its_disk_does_not_start(lab):
    uuid = lab.uuid("vm1")
    call(lab, "h1", "instance.destroy", uuid=uuid)
    call(lab, "h1", "move.to_resize", uuid=uuid, storage="local")
    with pytest.raises(DroverError, match="Cannot access storage file"):
        call(lab, "h1", "instance.start", uuid=uuid)


def test_renaming_over_an_existing_directory_is_refused(lab):
    uuid = lab.uuid("vm1")
    call(lab, "h1", "move.to_resize", uuid=uuid, storage="local")
    call(lab, "h1", "instance.prepare", uuid=uuid, storage="local",
         image_path=call(lab, "h1", "image.status",
                         uuid=lab.store.get_image("img")["uuid"])["path"],
         image_format="qcow2", disk_gb=1)
    with pytest.raises(Conflict, match="refusing"):
        call(lab, "h1", "move.restore", uuid=uuid, storage="local")


def test_power_loss_keeps_disks_and_definitions_not_guests(lab):
    lab.fleet.power_off("h1")
    with pytest.raises(HostUnreachable):
        call(lab, "h1", "host.facts")
    lab.fleet.power_on("h1")
    assert lab.domains() == [("vm1", "h1", "shutoff")]
    assert lab.directories() == [("local/h1", "vm1")]


def test_agent_crash_loses_jobs_not_domains(lab):
    assert lab.op("live", "vm1", host="h2")["state"] == "done"
    uuid = lab.uuid("vm1")
    assert call(lab, "h1", "migration.status", uuid=uuid)["status"] == \
        "completed"
    lab.fleet.crash_agent("h1")
    with pytest.raises(HostUnreachable, match="not running"):
        call(lab, "h1", "migration.status", uuid=uuid)
    lab.fleet.restart_agent("h1")
    with pytest.raises(NotFound):
        call(lab, "h1", "migration.status", uuid=uuid)
    assert lab.domains() == [("vm1", "h2", "running")]


def test_a_network_cut_stops_calls_and_host_to_host_copies(lab):
    lab.fleet.cut("h2")
    with pytest.raises(HostUnreachable):
        call(lab, "h2", "host.facts")
    lab.fleet.restore("h2")

    def cut_before_the_copy(fleet, host, method):
        if method == "move.copy_start":
            fleet.cut("h2")
            return True
        return False
    lab.fleet.before_calls(cut_before_the_copy)
    task = lab.op("migrate", "vm1", host="h2")
    assert task["state"] == "failed" and "No route to host" in task["error"]


def test_an_injected_error_fires_once(lab):
    lab.fleet.fail("h1", "instance.info")
    with pytest.raises(DroverError, match="internal error"):
        call(lab, "h1", "instance.info", uuid=lab.uuid("vm1"))
    assert call(lab, "h1", "instance.info", uuid=lab.uuid("vm1"))


def test_a_full_disk_refuses_writes(lab):
    lab.fleet.fill_disk("h2")
    task = lab.boot("vm2", host="h2")
    assert task["state"] == "failed"
    assert "No space left on device" in task["error"]
    assert call(lab, "h2", "host.facts")["disk_gb_used"] == \
        call(lab, "h2", "host.facts")["disk_gb"]


def test_simulated_time_does_not_wait(lab):
    """A source unreachable through the monitor's 120 s of retries takes
    no wall-clock time."""
    lab.fleet.at_step("monitor", lambda f: f.cut("h1"))
    started, sim_started = time.monotonic(), lab.fleet.clock.now
    task = lab.op("live", "vm1", host="h2")
    assert task["state"] == "failed" and "unreachable" in task["error"]
    assert lab.fleet.clock.now - sim_started >= 120
    assert time.monotonic() - started < 10
