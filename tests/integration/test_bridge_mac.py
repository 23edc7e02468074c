"""A host whose uplink MAC sorts above every guest tap (fe:54:...) keeps
its guest bridge's MAC, so guests live-migrate to and from it.

Left to the kernel, such a host's br-guest took the MAC of its first
guest's tap; during a live migration the other host has a tap with the
same MAC, drops every frame from this host as its own, and the
migration's connection dies."""
import os
import time

import pytest

from agent.conf import CONF
from agent.lab import fleet as lab_fleet
from agent.lab import netns
from agent.lab.image import build_image
from agent.lab.lab import Lab
from agent.lab.plan import GUEST_BRIDGE
from helpers import Fleet, wait_guest

HIGH_MAC = "fe:ff:00:00:00:02"      # above any fe:54:00:... tap


@pytest.fixture
def high_mac_fleet(lab_factory):
    """drover on two lab hosts, h2's eth0 having HIGH_MAC."""
    first = lab_factory(1)
    the_lab = Lab(first.lab_dir, first.plan.name, str(first.plan.network),
                  eth0_macs={2: HIGH_MAC})
    the_lab.up(2)           # keeps h1, adds h2; lab_factory takes both down
    cache = os.environ.get("DROVER_LAB_CACHE", CONF.lab.cache_dir)
    socket = lab_fleet.start(the_lab, build_image(cache),
                             progress=lambda m: None)
    return Fleet(the_lab, socket)


def _bridge_mac(fleet, host):
    return netns.link_mac(GUEST_BRIDGE, fleet.hosts[host]["netns"])



def _live_migrate_to(fleet, name, dest, before):
    rc, _out, err = fleet.cli("server", "migrate", name, "--live-migration",
                              "--wait", "--host", dest, check=False)
    assert rc == 0, err
    srv = fleet.server(name)
    assert srv["host"] == dest and srv["status"] == "ACTIVE", srv
    fleet.settled_on(srv["id"], {dest: "running"})
    status = wait_guest(srv["addresses"])
    assert status["boot"] == before["boot"]             # not rebooted
    assert status["uptime"] > before["uptime"]
    return status


def test_live_migration_to_and_from_a_host_with_a_high_uplink_mac(
        high_mac_fleet):
    fleet = high_mac_fleet
    low, high = sorted(fleet.hosts)
    assert netns.link_mac("eth0", fleet.hosts[high]["netns"]) == HIGH_MAC
    fleet.create("hm-guest", "lab.small", "--host", high,
                 "--storage", "shared")
    srv = fleet.server("hm-guest")
    status = wait_guest(srv["addresses"])
    time.sleep(1)
    status = _live_migrate_to(fleet, "hm-guest", low, status)
    time.sleep(1)
    _live_migrate_to(fleet, "hm-guest", high, status)
    assert _bridge_mac(fleet, high) == HIGH_MAC         # not the tap's
