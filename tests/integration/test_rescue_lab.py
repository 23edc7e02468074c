"""Rescue and unrescue on the lab, as a user lives them: a guest whose
boot sector is broken is repaired from its rescue system, over the lab
guest's HTTP control, and boots on its own disk again."""
import os
import signal
import urllib.request
import xml.etree.ElementTree as ET

import libvirt
import pytest

from agent.common.errors import Conflict
from coldmove import LOCAL, SHARED, entries, read_data, write_data
from helpers import (controller_pid, guest_get, restart_controller, wait_for,
                     wait_guest)

pytestmark = pytest.mark.integration
SECTOR = 512


# -- the rescue system's view of the disks (agent/lab/guest/cgi-bin) --------

def block_read(ip, disk, offset, size):
    url = f"http://{ip}/cgi-bin/block-read?disk={disk}&offset={offset}" \
          f"&size={size}"
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.read()


def block_write(ip, disk, offset, data):
    req = urllib.request.Request(
        f"http://{ip}/cgi-bin/block-write?disk={disk}&offset={offset}",
        data=data, method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.read().decode().strip()


def write_marker(ip):
    """512 random bytes at the start of the data area (quicker than the
    whole area); returns them."""
    from agent.lab.image import DATA_OFFSET
    wait_guest(ip)
    marker = os.urandom(SECTOR)
    block_write(ip, "vda", DATA_OFFSET, marker)
    return marker


def read_marker(ip, disk="vda"):
    from agent.lab.image import DATA_OFFSET
    wait_guest(ip)
    return block_read(ip, disk, DATA_OFFSET, SECTOR)


def disk_targets(fleet, host, uuid):
    """[(source file, target dev, booted)] of the domain as defined."""
    conn = libvirt.open(fleet.hosts[host]["libvirt_uri"])
    try:
        root = ET.fromstring(conn.lookupByUUIDString(uuid).XMLDesc(
            libvirt.VIR_DOMAIN_XML_INACTIVE))
    finally:
        conn.close()
    return [(d.find("source").get("file"), d.find("target").get("dev"),
             d.find("boot") is not None)
            for d in root.findall("./devices/disk")]


def heartbeats(fleet, name):
    """Boot ids of the heartbeat lines in the instance's console log."""
    log = fleet.call("server.console_log", name=name, lines=0)
    return {word.removeprefix("boot=") for line in log.splitlines()
            if "drover-heartbeat" in line
            for word in line.split() if word.startswith("boot=")}


def refused(fleet, *args):
    rc, _, err = fleet.cli(*args, check=False)
    assert rc == 2, (args, rc, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


# -- tests -------------------------------------------------------------------

def test_rescue_repairs_a_guest_that_cannot_boot(fleet, servers):
    name = "rsc-boot"
    servers.append(name)
    server = fleet.create(name)
    ip, host, uuid = server["addresses"], server["host"], server["id"]
    written = write_data(ip, seed=31)
    first_boot = wait_guest(ip)["boot"]
    boot_sector = block_read(ip, "vda", 0, SECTOR)
    assert boot_sector[510:] == b"\x55\xaa"

    # Break the boot sector offline: the guest no longer boots.
    fleet.json("server", "stop", name, "--wait")
    fleet.host_exec(host, ["qemu-io", "-f", "qcow2", "-c",
                           f"write -z 0 {SECTOR}", f"{LOCAL}/{uuid}/disk"])
    assert fleet.json("server", "start", name, "--wait")["status"] == \
        "ACTIVE"
    # While rescue waits for a graceful shutdown the broken guest never
    # answers ([libvirt] shutdown_timeout, 20 s in the lab: a good guest
    # boots in ~3 s); its console, at the end, shows no boot of its own.
    task = fleet.call("server.rescue", name=name)["task_id"]
    wait_for(lambda: fleet.call("task.show", id=task)["progress"] ==
             "shutting down", 60, "rescue shutting the guest down")
    with pytest.raises(OSError):
        guest_get(ip, "/cgi-bin/status", timeout=2)
    assert heartbeats(fleet, name) == {first_boot}
    assert fleet.wait_task(task)["state"] == "done"
    rescued = fleet.server(name)
    assert (rescued["status"], rescued["host"]) == ("RESCUE", host)
    assert ip in rescued["rescue"] and "vdb" in rescued["rescue"]
    assert disk_targets(fleet, host, uuid) == [
        (f"{LOCAL}/{uuid}/disk.rescue", "vda", True),
        (f"{LOCAL}/{uuid}/disk", "vdb", False)]
    assert fleet.domains(host).get(uuid) == "running"
    rescue_boot = wait_guest(ip)["boot"]        # same address
    assert rescue_boot != first_boot
    # The own disk, as the rescue system sees it: data, broken sector.
    assert guest_get(ip, "/cgi-bin/data-read?disk=vdb", timeout=60) == \
        written
    assert block_read(ip, "vdb", 0, SECTOR) == bytes(SECTOR)
    assert block_write(ip, "vdb", 0, boot_sector).startswith("sha256=")
    assert block_read(ip, "vdb", 0, SECTOR) == boot_sector

    active = fleet.json("server", "unrescue", name, "--wait")
    assert active["status"] == "ACTIVE" and "rescue" not in active
    assert disk_targets(fleet, host, uuid) == [
        (f"{LOCAL}/{uuid}/disk", "vda", True)]
    own_boot = wait_guest(ip)["boot"]
    assert own_boot not in (first_boot, rescue_boot)
    assert read_data(ip) == written
    # Three boots in all: the broken disk never booted.
    assert heartbeats(fleet, name) == {first_boot, rescue_boot, own_boot}
    assert "disk.rescue" not in entries(fleet, host, f"{LOCAL}/{uuid}")


def test_stopped_shared_instance_rescued_what_is_refused_and_delete(
        fleet, servers):
    name = "rsc-shared"
    servers.append(name)
    server = fleet.create(name, "lab.small", "--storage", "shared")
    ip, host, uuid = server["addresses"], server["host"], server["id"]
    marker = write_marker(ip)
    fleet.json("server", "stop", name, "--wait")

    rescued = fleet.json("server", "rescue", name, "--wait")
    assert (rescued["status"], rescued["power_state"]) == \
        ("RESCUE", "Running")
    assert disk_targets(fleet, host, uuid) == [
        (f"{SHARED}/{uuid}/disk.rescue", "vda", True),
        (f"{SHARED}/{uuid}/disk", "vdb", False)]
    assert read_marker(ip, "vdb") == marker

    # Refused, exit 2 and one line (the CLI), and through the API.
    refused(fleet, "server", "migrate", name, "--live-migration")
    refused(fleet, "server", "resize", name, "--flavor", "lab.medium")
    refused(fleet, "server", "image", "create", name, "--name", "rsc-snap")
    refused(fleet, "server", "shelve", name)
    for method, params in (("server.migrate", {}),
                           ("server.migrate", {"live": True}),
                           ("server.resize", {"flavor": "lab.medium"}),
                           ("server.stop", {}), ("server.start", {}),
                           ("server.reboot", {}), ("server.rescue", {})):
        with pytest.raises(Conflict) as err:
            fleet.call(method, name=name, **params)
        assert name in str(err.value), (method, err.value)
    assert fleet.server(name)["status"] == "RESCUE"
    assert fleet.call("migration.list", name=name) == []

    # Delete while rescued: nothing left, on any host.
    fleet.cli("server", "delete", name, "--wait")
    for each in fleet.hosts:
        assert uuid not in fleet.domains(each)
        assert uuid not in entries(fleet, each)
    assert uuid not in entries(fleet, host, SHARED)


def _agent_pid(fleet, host):
    from agent.lab import fleet as lab_fleet
    index = fleet.lab.plan.resolve(host).index
    for d in fleet.lab._state()["daemons"]:
        if d["name"] == lab_fleet.AGENT and d["host"] == index:
            return d["pid"]
    raise AssertionError(f"no agent on {host}")


def _kill_at(fleet, task_id, progress):
    """Kill the controller while task ``task_id`` reports ``progress``,
    then start it again."""
    wait_for(lambda: fleet.call("task.show", id=task_id)["progress"]
             == progress, 60, f"task {task_id} at {progress!r}")
    restart_controller(fleet, kill=True)


def test_controller_killed_mid_rescue_and_unrescue_then_rescue_timeout(
        fleet, servers):
    name = "rsc-crash"
    servers.append(name)
    server = fleet.create(name)
    ip, host, uuid = server["addresses"], server["host"], server["id"]
    marker = write_marker(ip)

    task = fleet.call("server.rescue", name=name)["task_id"]
    _kill_at(fleet, task, "shutting down")
    assert fleet.wait_task(task)["state"] == "done"
    assert fleet.server(name)["status"] == "RESCUE"
    assert disk_targets(fleet, host, uuid)[0] == \
        (f"{LOCAL}/{uuid}/disk.rescue", "vda", True)
    assert fleet.domains(host).get(uuid) == "running"

    # The rescue system's destroy is quicker than a poll: hold the
    # agent's answer (SIGSTOP) so the controller dies while it waits.
    # It comes back with [compute] rescue_timeout set, for the end.
    agent = _agent_pid(fleet, host)
    os.kill(agent, signal.SIGSTOP)
    try:
        task = fleet.call("server.unrescue", name=name)["task_id"]
        wait_for(lambda: fleet.call("task.show", id=task)["progress"]
                 == "stopping the rescue system", 30, "unrescue started")
        os.kill(controller_pid(fleet), signal.SIGKILL)
    finally:
        os.kill(agent, signal.SIGCONT)
    restart_controller(fleet, options={"compute": {"rescue_timeout": 2}})
    try:
        assert fleet.wait_task(task)["state"] == "done"
        assert fleet.server(name)["status"] == "ACTIVE"
        assert disk_targets(fleet, host, uuid) == [
            (f"{LOCAL}/{uuid}/disk", "vda", True)]
        assert {h for h, doms in fleet.all_domains().items()
                if uuid in doms} == {host}
        assert read_marker(ip) == marker        # booted on its own disk

        # rescue_timeout: unrescued by the controller itself.
        assert fleet.json("server", "rescue", name, "--wait")["status"] \
            == "RESCUE"
        wait_for(lambda: fleet.server(name)["status"] == "ACTIVE" and
                 fleet.server(name)["task_state"] is None, 60,
                 "unrescued by rescue_timeout")
        assert disk_targets(fleet, host, uuid) == [
            (f"{LOCAL}/{uuid}/disk", "vda", True)]
        assert fleet.domains(host).get(uuid) == "running"
    finally:
        restart_controller(fleet)
