"""Cold migration on the lab: local storage (the disks copied over SSH)
and shared storage (moved within it), then confirm."""
import pytest

from coldmove import (SHARED, assert_only_on, entries, migration, read_data,
                      write_data)
from helpers import wait_guest

pytestmark = pytest.mark.integration


def test_cold_migration_local_storage_copies_and_confirms(fleet, servers):
    servers.append("cm-local")
    server = fleet.create("cm-local")
    ip, source = server["addresses"], server["host"]
    written = write_data(ip, seed=11)
    boot = wait_guest(ip)["boot"]

    moved = fleet.json("server", "migrate", "cm-local", "--wait")
    assert moved["status"] == "VERIFY_RESIZE"
    dest = moved["host"]
    assert dest != source
    assert fleet.domains(dest)[server["id"]] == "running"
    assert server["id"] + "_resize" in entries(fleet, source)
    status = wait_guest(ip)
    assert status["boot"] != boot          # booted again, on the new host
    assert read_data(ip) == written
    mig = migration(fleet, "cm-local")
    assert (mig["type"], mig["source_host"], mig["dest_host"],
            mig["status"]) == ("migration", source, dest, "finished")
    assert mig["progress"]["percent"] == 100.0
    assert mig["progress"]["path"] == "copy"
    # Sparse: far less sent than the disk's virtual size.
    assert mig["progress"]["bytes_sent"] < mig["progress"]["virtual_size"]

    confirmed = fleet.json("server", "resize", "confirm", "cm-local",
                           "--wait")
    assert confirmed["status"] == "ACTIVE"
    assert_only_on(fleet, fleet.server("cm-local"), dest)
    assert migration(fleet, "cm-local")["status"] == "confirmed"
    assert read_data(ip) == written
    rows = fleet.json("server", "migration", "list", "cm-local")
    assert [r["Status"] for r in rows] == ["confirmed"]


def test_cold_migration_shared_storage_keeps_a_stopped_guest_off(fleet,
                                                                 servers):
    servers.append("cm-shared")
    server = fleet.create("cm-shared", "lab.small", "--storage", "shared")
    ip, source, uuid = server["addresses"], server["host"], server["id"]
    written = write_data(ip, seed=12)
    fleet.json("server", "stop", "cm-shared", "--wait")

    moved = fleet.json("server", "migrate", "cm-shared", "--wait")
    assert moved["status"] == "VERIFY_RESIZE"
    assert moved["power_state"] == "Shutdown"
    dest = moved["host"]
    assert dest != source
    assert fleet.domains(dest)[uuid] == "shutoff"     # not started
    seen = entries(fleet, dest, SHARED)
    assert {uuid, uuid + "_resize"} <= seen
    assert migration(fleet, "cm-shared")["progress"]["path"] == "shared"

    confirmed = fleet.json("server", "resize", "confirm", "cm-shared",
                           "--wait")
    assert confirmed["status"] == "SHUTOFF"
    assert_only_on(fleet, fleet.server("cm-shared"), dest, state="shutoff",
                   base=SHARED)
    fleet.json("server", "start", "cm-shared", "--wait")
    wait_guest(ip)
    assert read_data(ip) == written
    assert_only_on(fleet, fleet.server("cm-shared"), dest, base=SHARED)
