"""Snapshot to image, shelve and unshelve on the lab, with real guests:
the guest keeps running through a live snapshot, its disk chain ends as
it began, the image holds the data of the snapshot's moment (and not
what was written after), and a shelved guest comes back elsewhere with
its data, MAC and address while its host's capacity was freed.

The live snapshot goes through an image store on the lab's shared
storage ([controller] image_store_host_path: the host writes the image
into the store), the shelve through the default store the controller
reaches over SSH: both ways on real hosts."""
import json
import os

import libvirt
import pytest

from coldmove import LOCAL, entries, read_data, write_data
from helpers import wait_guest
from live_helpers import allocated

from agent.lab import fleet as lab_fleet
from agent.lab.plan import SHARED_STORAGE

pytestmark = pytest.mark.integration


def disk_chain(fleet, host, uuid):
    """The files of the disk's backing chain, top first, with formats."""
    out = fleet.host_exec(host, ["qemu-img", "info", "-U", "--output=json",
                                 "--backing-chain", f"{LOCAL}/{uuid}/disk"])
    return [(i["filename"], i["format"], i.get("backing-filename"))
            for i in json.loads(out)]


def domain_xml(fleet, host, uuid):
    conn = libvirt.open(fleet.hosts[host]["libvirt_uri"])
    try:
        return conn.lookupByUUIDString(uuid).XMLDesc(0)
    finally:
        conn.close()


def _restart_controller(fleet, options=None):
    fleet.lab.stop_daemon(None, lab_fleet.CONTROLLER)
    lab_fleet.start(fleet.lab, image_path=None, progress=lambda m: None,
                    controller_options=options)


@pytest.fixture
def shared_store(fleet):
    """The controller with its image store on the lab's shared storage,
    which the hosts see at SHARED_STORAGE/images; the store as it was
    after the test."""
    store = os.path.join(fleet.lab.files.shared_dir, "images")
    _restart_controller(fleet, {"controller": {
        "image_store_path": store,
        "image_store_host_path": f"{SHARED_STORAGE}/images"}})
    try:
        yield store
    finally:
        _restart_controller(fleet)


def test_live_snapshot_keeps_the_guest_and_boots_elsewhere(
        fleet, servers, shared_store):
    servers += ["snap-src", "snap-copy"]
    server = fleet.create("snap-src")
    ip, host, uuid = server["addresses"], server["host"], server["id"]
    at_snapshot = write_data(ip, seed=21)
    before = wait_guest(ip)
    files, chain = entries(fleet, host, f"{LOCAL}/{uuid}"), \
        disk_chain(fleet, host, uuid)

    image = fleet.json("server", "image", "create", "snap-src", "--name",
                       "snap-img", "--wait")
    assert image["status"] == "active" and image["instance_uuid"] == uuid
    assert len(image["checksum"]) == 64 and image["size"] > 0
    # Written by the host into the shared store, as the record says.
    stored = os.path.join(shared_store, image["uuid"])
    assert os.listdir(shared_store) == [image["uuid"]]
    assert os.path.getsize(stored) == image["size"]

    after = wait_guest(ip)
    assert after["boot"] == before["boot"]          # never restarted
    assert after["uptime"] > before["uptime"]
    assert fleet.server("snap-src")["status"] == "ACTIVE"
    # No temporary file left, the chain as it was, the disk clean.
    assert entries(fleet, host, f"{LOCAL}/{uuid}") == files
    assert disk_chain(fleet, host, uuid) == chain
    out = fleet.host_exec(host, ["qemu-img", "check", "-U", "-f", "qcow2",
                                 f"{LOCAL}/{uuid}/disk"])
    assert "No errors were found" in out
    after_snapshot = write_data(ip, seed=22)
    assert after_snapshot != at_snapshot

    other = sorted(h for h in fleet.hosts if h != host)[0]
    copy = fleet.json("server", "create", "snap-copy", "--flavor",
                      "lab.small", "--image", "snap-img", "--host", other,
                      "--wait")
    assert copy["host"] == other
    assert read_data(copy["addresses"]) == at_snapshot
    assert read_data(ip) == after_snapshot

    # In use: refused; once its instance is gone, deleted.
    rc, _, err = fleet.cli("image", "delete", "snap-img", check=False)
    assert rc == 2 and "used by 1" in err
    fleet.delete_servers(["snap-copy"])
    fleet.cli("image", "delete", "snap-img")
    assert "snap-img" not in {i["Name"] for i in fleet.json("image", "list")}
    assert os.listdir(shared_store) == []


def test_shelve_then_unshelve_onto_another_host(fleet, servers):
    servers.append("shelf")
    server = fleet.create("shelf")
    ip, host, uuid = server["addresses"], server["host"], server["id"]
    written = write_data(ip, seed=31)
    boot = wait_guest(ip)["boot"]
    vcpus, ram = allocated(fleet, host)

    shelved = fleet.json("server", "shelve", "shelf", "--wait")
    assert shelved["status"] == "SHELVED_OFFLOADED" and not shelved["host"]
    assert all(uuid not in fleet.domains(h) for h in fleet.hosts)
    assert uuid not in entries(fleet, host)
    assert allocated(fleet, host) == (vcpus - server["vcpus"],
                                      ram - server["ram_mb"])
    images = {i["Name"]: i for i in fleet.json("image", "list")}
    assert images["shelf-shelved"]["Status"] == "active"
    assert not fleet.ping(host, ip)

    other = sorted(h for h in fleet.hosts if h != host)[0]
    back = fleet.json("server", "unshelve", "shelf", "--host", other,
                      "--wait")
    assert back["status"] == "ACTIVE" and back["host"] == other
    assert (back["id"], back["mac"], back["addresses"], back["flavor"]) == \
        (uuid, server["mac"], ip, server["flavor"])
    assert server["mac"] in domain_xml(fleet, other, uuid)
    assert wait_guest(ip, timeout=90)["boot"] != boot
    assert fleet.ping(host, ip)
    assert read_data(ip) == written
    assert "shelf-shelved" not in {i["Name"] for i in
                                   fleet.json("image", "list")}
    assert uuid not in entries(fleet, host)
