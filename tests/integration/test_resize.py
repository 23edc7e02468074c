"""Resize on the lab: up then confirm, then revert, and a shrinking disk
refused."""
import pytest

from coldmove import (assert_only_on, domain_memory_mib, entries, migration,
                      read_data, virtual_size, write_data)
from helpers import wait_guest

pytestmark = pytest.mark.integration
GIB = 1 << 30


def test_resize_up_then_confirm_then_smaller_disk_refused(fleet, servers):
    servers.append("rs-up")
    server = fleet.create("rs-up")
    ip, source, uuid = server["addresses"], server["host"], server["id"]
    written = write_data(ip, seed=21)
    boot = wait_guest(ip)["boot"]

    resized = fleet.json("server", "resize", "rs-up", "--flavor",
                         "lab.medium", "--wait")
    assert resized["status"] == "VERIFY_RESIZE"
    assert (resized["flavor"], resized["ram_mb"], resized["disk_gb"]) == \
        ("lab.medium", 384, 2)
    dest = resized["host"]
    assert dest != source
    assert domain_memory_mib(fleet, dest, uuid) == 384
    assert virtual_size(fleet, dest, uuid) == 2 * GIB
    assert wait_guest(ip)["boot"] != boot
    assert read_data(ip) == written
    mig = migration(fleet, "rs-up")
    assert (mig["type"], mig["status"]) == ("resize", "finished")
    assert mig["old_flavor"]["name"] == "lab.small"
    assert mig["new_flavor"]["name"] == "lab.medium"

    confirmed = fleet.json("server", "resize", "confirm", "rs-up", "--wait")
    assert confirmed["status"] == "ACTIVE"
    assert confirmed["flavor"] == "lab.medium"
    assert_only_on(fleet, fleet.server("rs-up"), dest)
    assert read_data(ip) == written

    # Back to a smaller disk: refused, clearly, and nothing changes.
    rc, _, err = fleet.cli("server", "resize", "rs-up", "--flavor",
                           "lab.small", check=False)
    assert rc != 0 and "disks only grow" in err and "Traceback" not in err
    after = fleet.server("rs-up")
    assert (after["status"], after["flavor"], after["host"]) == \
        ("ACTIVE", "lab.medium", dest)
    assert len(fleet.call("migration.list", name="rs-up")) == 1


def test_resize_then_revert_restores_the_source(fleet, servers):
    servers.append("rs-revert")
    server = fleet.create("rs-revert")
    ip, source, uuid = server["addresses"], server["host"], server["id"]
    written = write_data(ip, seed=22)

    resized = fleet.json("server", "resize", "rs-revert", "--flavor",
                         "lab.large", "--wait")
    assert resized["status"] == "VERIFY_RESIZE"
    dest = resized["host"]
    assert domain_memory_mib(fleet, dest, uuid) == 512
    boot = wait_guest(ip)["boot"]

    reverted = fleet.json("server", "resize", "revert", "rs-revert",
                          "--wait")
    assert reverted["status"] == "ACTIVE"
    assert (reverted["host"], reverted["flavor"]) == (source, "lab.small")
    assert domain_memory_mib(fleet, source, uuid) == 256
    assert virtual_size(fleet, source, uuid) == 1 * GIB
    assert wait_guest(ip)["boot"] != boot      # booted again on the source
    assert read_data(ip) == written
    assert_only_on(fleet, fleet.server("rs-revert"), source)
    assert uuid not in entries(fleet, dest)
    assert migration(fleet, "rs-revert")["status"] == "reverted"
