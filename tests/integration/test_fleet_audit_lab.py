"""drover fleet audit on the lab: nothing new found after boots and moves;
then each inconsistency made behind drover's back is found, one test per
kind (an orphan domain defined through the host's libvirt, a domain
undefined behind drover's back, an orphan instance directory, a claim row
put in the database, a host whose agent is stopped).

A guest running in two places is left to the unit tests
(tests/unit/test_fleet_audit.py): on shared storage QEMU's image lock
refuses the second start, on local storage it needs a copy of the disk
on another host.

The session lab is shared with other test modules: findings they may have
left are taken as a baseline, and each test asserts what is new."""
import os
import uuid as uuidlib

import libvirt
import pytest

from agent.lab import fleet as lab_fleet
from coldmove import LOCAL
from helpers import audit_rows, finding_key

pytestmark = pytest.mark.integration


audit = audit_rows
_key = finding_key


@pytest.fixture(scope="module")
def baseline(fleet):
    return {_key(r) for r in audit(fleet)}


def new_findings(fleet, baseline):
    return sorted((r["Kind"], r["Host"], r["Instance"])
                  for r in audit(fleet) if _key(r) not in baseline)


def _libvirt(fleet, host):
    return libvirt.open(fleet.hosts[host]["libvirt_uri"])


def test_nothing_new_after_boots_and_moves(fleet, servers, baseline):
    servers += ["fa-local", "fa-shared"]
    fleet.create("fa-local")
    fleet.create("fa-shared", "lab.small", "--storage", "shared")
    moved = fleet.json("server", "migrate", "fa-local", "--wait")
    assert moved["status"] == "VERIFY_RESIZE"
    # The source keeps <uuid>_resize and its domain: owned, not found.
    assert new_findings(fleet, baseline) == []
    fleet.json("server", "resize", "confirm", "fa-local", "--wait")
    fleet.json("server", "migrate", "fa-shared", "--live-migration",
               "--wait")
    assert new_findings(fleet, baseline) == []
    if not baseline:
        rc, out, _err = fleet.cli("fleet", "audit")
        assert rc == 0 and "nothing found" in out


def test_orphan_domain_defined_through_libvirt(fleet, baseline):
    host = sorted(fleet.hosts)[0]
    uuid = str(uuidlib.uuid4())
    xml = (f"<domain type='qemu'><name>fa-orphan-{uuid[:8]}</name>"
           f"<uuid>{uuid}</uuid><memory unit='MiB'>64</memory>"
           "<os><type arch='x86_64'>hvm</type></os>"
           "<features><acpi/></features></domain>")
    conn = _libvirt(fleet, host)
    try:
        dom = conn.defineXML(xml)
        try:
            assert new_findings(fleet, baseline) == [
                ("orphan-domain", host, uuid)]
        finally:
            dom.undefine()
    finally:
        conn.close()
    assert new_findings(fleet, baseline) == []


def test_domain_undefined_behind_drovers_back(fleet, servers, baseline):
    servers.append("fa-missing")
    server = fleet.create("fa-missing")
    conn = _libvirt(fleet, server["host"])
    try:
        dom = conn.lookupByUUIDString(server["id"])
        dom.destroy()
        dom.undefine()
    finally:
        conn.close()
    assert new_findings(fleet, baseline) == [
        ("missing-domain", server["host"], "fa-missing")]


def test_orphan_instance_directory(fleet, baseline):
    host = sorted(fleet.hosts)[1]
    uuid = str(uuidlib.uuid4())
    path = f"{LOCAL}/{uuid}_resize"
    fleet.host_exec(host, ["mkdir", "-p", path])
    try:
        assert new_findings(fleet, baseline) == [
            ("orphan-directory", host, uuid)]
    finally:
        fleet.host_exec(host, ["rmdir", path])


def test_claim_row_put_in_the_database(fleet, baseline):
    from agent.controller.db import Store
    host = sorted(fleet.hosts)[2]
    consumer = str(uuidlib.uuid4())
    db = os.path.join(fleet.lab.lab_dir, "controller", "drover.db")
    store = Store(f"sqlite:///{db}")
    try:
        store.claim(host, consumer, 1, 64, 0)
        try:
            assert new_findings(fleet, baseline) == [
                ("orphan-claim", host, consumer)]
        finally:
            store.release(consumer)
    finally:
        store.close()


def test_host_whose_agent_is_stopped(fleet, baseline):
    host = sorted(fleet.hosts)[2]
    fleet.lab.stop_daemon(host, lab_fleet.AGENT)
    try:
        assert new_findings(fleet, baseline) == [("unreachable", host, None)]
    finally:
        lab_fleet.start(fleet.lab, image_path=None, progress=lambda m: None)
    assert new_findings(fleet, baseline) == []
