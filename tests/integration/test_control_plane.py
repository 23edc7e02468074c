"""The control plane on a real lab: agents, controller, scheduler, CLI."""
import json
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import (controller_pid, guest_status, process_alive, wait_for,
                     wait_guest)

pytestmark = pytest.mark.integration


def test_hosts_are_registered_and_up(fleet):
    hosts = fleet.json("host", "list")
    assert sorted(h["Name"] for h in hosts) == sorted(fleet.hosts)
    assert {h["State"] for h in hosts} == {"up"}
    show = fleet.json("host", "show", hosts[0]["Name"])
    assert show["libvirt_version"] and show["qemu_version"]


def test_boot_runs_a_real_guest_and_database_matches_libvirt(fleet,
                                                             servers):
    servers.append("cp-boot")
    server = fleet.create("cp-boot")
    assert server["status"] == "ACTIVE"
    domains = fleet.domains(server["host"])
    assert domains.get(server["id"]) == "running"
    for other in set(fleet.hosts) - {server["host"]}:
        assert server["id"] not in fleet.domains(other)
    first = wait_guest(server["addresses"])
    assert fleet.ping(next(iter(set(fleet.hosts) - {server["host"]})),
                      server["addresses"], count=2)
    time.sleep(1.2)
    assert guest_status(server["addresses"])["uptime"] > first["uptime"]
    log = fleet.cli("server", "console", "log", "cp-boot")[1]
    assert "drover-heartbeat uptime=" in log
    events = fleet.json("server", "event", "list", "cp-boot")
    assert [e["Action"] for e in events] == ["create"]
    assert events[0]["Result"] == "Success"


def test_stop_start_reboot_follow_the_guest(fleet, servers):
    servers.append("cp-power")
    server = fleet.create("cp-power")
    ip = server["addresses"]
    boot = wait_guest(ip)["boot"]
    stopped = fleet.json("server", "stop", "cp-power", "--wait")
    assert stopped["status"] == "SHUTOFF"
    assert fleet.domains(server["host"])[server["id"]] == "shutoff"
    started = fleet.json("server", "start", "cp-power", "--wait")
    assert started["status"] == "ACTIVE"
    second = wait_guest(ip)["boot"]
    assert second != boot               # a real power cycle
    fleet.json("server", "reboot", "cp-power", "--hard", "--wait")
    assert wait_guest(ip)["boot"] not in (boot, second)


def test_zones_and_aggregates_steer_placement(fleet, servers):
    h1, h2, h3 = sorted(fleet.hosts)
    fleet.cli("aggregate", "create", "cp-az1", "--zone", "cp-az1")
    fleet.cli("aggregate", "create", "cp-az2", "--zone", "cp-az2")
    fleet.cli("aggregate", "create", "cp-ssd", "--property", "ssd=true")
    try:
        fleet.cli("aggregate", "add", "host", "cp-az1", h1)
        fleet.cli("aggregate", "add", "host", "cp-az2", h2)
        fleet.cli("aggregate", "add", "host", "cp-az2", h3)
        fleet.cli("aggregate", "add", "host", "cp-ssd", h3)
        # A host in two zones is refused, clearly.
        rc, _, err = fleet.cli("aggregate", "add", "host", "cp-az1", h2,
                               check=False)
        assert rc == 2 and "zone" in err and "Traceback" not in err
        zones = {z["Zone Name"]: z["Hosts"] for z in
                 fleet.json("availability", "zone", "list")}
        assert zones["cp-az1"] == [h1] and sorted(zones["cp-az2"]) == [h2, h3]

        fleet.cli("flavor", "create", "cp-ssd", "--ram", "256", "--disk",
                  "1", "--property", "ssd=true")
        servers += ["cp-ssd-1", "cp-ssd-2", "cp-az-1", "cp-az-2"]
        for name in ("cp-ssd-1", "cp-ssd-2"):
            assert fleet.create(name, "cp-ssd")["host"] == h3
        for name in ("cp-az-1", "cp-az-2"):
            s = fleet.create(name, "lab.small", "--availability-zone",
                             "cp-az1")
            assert s["host"] == h1 and s["availability_zone"] == "cp-az1"

        # Dry run: every host, with the filter that rejected it.
        rows = fleet.json("server", "create", "x", "--flavor", "cp-ssd",
                          "--image", "lab-guest", "--availability-zone",
                          "cp-az1", "--dry-run")
        assert {r["Host"] for r in rows} == {h1, h2, h3}
        assert all(r["Result"] == "rejected" for r in rows)
        by_host = {r["Host"]: r for r in rows}
        assert by_host[h2]["Filter"] == "AvailabilityZoneFilter"
        assert by_host[h1]["Filter"] == "AggregateInstanceExtraSpecsFilter"

        # Impossible placement: fails, naming the reasons.
        servers.append("cp-nowhere")
        rc, out, err = fleet.cli("server", "create", "cp-nowhere",
                                 "--flavor", "cp-ssd", "--image",
                                 "lab-guest", "--availability-zone",
                                 "cp-az1", "--wait", check=False)
        assert rc == 1
        assert "No valid host was found" in err
        assert "AvailabilityZoneFilter" in err
        assert fleet.server("cp-nowhere")["status"] == "ERROR"
    finally:
        fleet.delete_servers(list(servers))
        servers.clear()
        for agg, hosts in (("cp-az1", [h1]), ("cp-az2", [h2, h3]),
                           ("cp-ssd", [h3])):
            for h in hosts:
                fleet.cli("aggregate", "remove", "host", agg, h,
                          check=False)
            fleet.cli("aggregate", "delete", agg, check=False)
        fleet.cli("flavor", "delete", "cp-ssd", check=False)


def test_concurrent_boots_never_oversubscribe(fleet, servers):
    """20 boots at once of a flavor of which 10 fit: 10 ACTIVE, the rest
    'no valid host', no host over its capacity."""
    h1, h2, _ = sorted(fleet.hosts)
    # Two hosts of (4096 - 512 reserved) MB: five 700 MB guests each.
    fleet.cli("aggregate", "create", "cp-burst", "--property", "burst=yes")
    fleet.cli("aggregate", "add", "host", "cp-burst", h1)
    fleet.cli("aggregate", "add", "host", "cp-burst", h2)
    fleet.cli("flavor", "create", "cp-burst", "--ram", "700", "--disk", "1",
              "--property", "burst=yes")
    names = [f"cp-burst-{i}" for i in range(20)]
    servers.extend(names)
    try:
        with ThreadPoolExecutor(20) as pool:
            tasks = list(pool.map(lambda n: fleet.call(
                "server.create", name=n, flavor="cp-burst",
                image="lab-guest")["task_id"], names))
            results = list(pool.map(fleet.wait_task, tasks))
        shown = [fleet.server(n) for n in names]
        active = [s for s in shown if s["status"] == "ACTIVE"]
        failed = [s for s in shown if s["status"] == "ERROR"]
        assert len(active) == 10 and len(failed) == 10, \
            [(s["name"], s["status"], s["fault"]) for s in shown]
        assert all("No valid host" in s["fault"] for s in failed)
        assert sum(r["state"] == "done" for r in results) == 10
        per_host = {}
        for s in active:
            per_host[s["host"]] = per_host.get(s["host"], 0) + 1
        assert per_host == {h1: 5, h2: 5}
        for host in (h1, h2):
            running = [u for u, st in fleet.domains(host).items()
                       if st == "running"]
            assert len(running) >= 5
    finally:
        fleet.delete_servers(names)
        servers.clear()
        fleet.cli("aggregate", "remove", "host", "cp-burst", h1, check=False)
        fleet.cli("aggregate", "remove", "host", "cp-burst", h2, check=False)
        fleet.cli("aggregate", "delete", "cp-burst", check=False)
        fleet.cli("flavor", "delete", "cp-burst", check=False)


def _host_state(fleet, name):
    return fleet.json("host", "show", name)["state"]


def test_host_goes_down_without_its_agent_and_comes_back(fleet):
    host = sorted(fleet.hosts)[2]
    from agent.lab import fleet as lab_fleet
    fleet.lab.stop_daemon(host, lab_fleet.AGENT)
    stopped = time.monotonic()
    try:
        # host_down_after is 6 s on the lab, polls every 2 s.
        down = wait_for(lambda: _host_state(fleet, host) == "down", 20,
                         f"{host} not marked down")
        assert down - stopped >= 4      # not on the first missed poll
    finally:
        lab_fleet.start(fleet.lab, image_path=None, progress=lambda m: None)
    wait_for(lambda: _host_state(fleet, host) == "up", 20,
              f"{host} not back up")


def test_bad_names_are_refused_with_one_line(fleet):
    bad = ["a;rm -rf /", "../../etc/passwd", "a b", "$(reboot)", "x" * 300,
           "-leading", "name\nnewline", ""]
    for name in bad:
        for args in (("server", "create", name, "--flavor", "lab.small",
                      "--image", "lab-guest"),
                     ("flavor", "create", name, "--ram", "64"),
                     ("aggregate", "create", name)):
            rc, out, err = fleet.cli(*args, check=False)
            assert rc == 2, (args, rc, err)
            assert "Traceback" not in err and len(err.strip().splitlines()) \
                == 1, err
    rc, _, err = fleet.cli("server", "create", "ok-name", "--flavor",
                           "lab.small", "--image", "lab-guest", "--property",
                           "ip;x=1", check=False)
    assert rc == 2 and "Traceback" not in err
    rc, _, err = fleet.cli("server", "show", "no-such-server", check=False)
    assert rc == 2 and "no-such-server" in err
    names = [s["Name"] for s in fleet.json("server", "list")]
    assert not [n for n in names if n not in ("ok-name",) and
                any(c in n for c in ";/$ \n")]


@pytest.mark.usefixtures("audit_unchanged")
def test_controller_killed_mid_boot_leaves_no_orphan(fleet, servers):
    """Kill the controller at several points of boots, start it again:
    every record has its domain and every domain its record."""
    from agent.lab import fleet as lab_fleet
    names = [f"cp-crash-{i}" for i in range(3)]
    servers.extend(names)
    for delay, name in zip((0.05, 0.4, 0.9), names, strict=True):
        fleet.call("server.create", name=name, flavor="lab.small",
                   image="lab-guest")
        time.sleep(delay)
        pid = controller_pid(fleet)
        import os
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda p=pid: not process_alive(p), 10, "controller not dead")
        fleet.lab.stop_daemon(None, lab_fleet.CONTROLLER)
        lab_fleet.start(fleet.lab, image_path=None, progress=lambda m: None)
    wait_for(lambda: all(fleet.server(n)["task_state"] is None
                          for n in names), 120, "boots did not settle")
    records = {s["id"]: s for s in (fleet.server(n) for n in names)}
    assert {s["status"] for s in records.values()} == {"ACTIVE"}
    seen = {}
    for host, doms in fleet.all_domains().items():
        for uuid in doms:
            seen.setdefault(uuid, []).append(host)
    for uuid, rec in records.items():
        assert seen.get(uuid) == [rec["host"]], (rec["name"], seen.get(uuid))
    known = {s["ID"] for s in fleet.json("server", "list")}
    assert set(seen) <= known, "a domain without a record"


def test_json_output_is_machine_readable(fleet):
    out = fleet.cli("flavor", "list", "-f", "json", "-c", "Name")[1]
    assert {"Name": "lab.small"} in json.loads(out)
    out = fleet.cli("flavor", "show", "lab.small", "-f", "value", "-c",
                    "ram_mb")[1]
    assert out.strip() == "256"


def test_flavor_properties_and_host_removal(fleet, servers):
    """flavor set/unset steer the scheduler; a host with an instance cannot
    be deleted, an empty one can, and comes back with host add."""
    h1, _, h3 = sorted(fleet.hosts)
    fleet.cli("flavor", "create", "cp-props", "--ram", "256")
    try:
        fleet.cli("flavor", "set", "cp-props", "--property", "gpu=true")
        rows = fleet.json("server", "create", "x", "--flavor", "cp-props",
                          "--image", "lab-guest", "--dry-run")
        assert {r["Result"] for r in rows} == {"rejected"}
        fleet.cli("flavor", "unset", "cp-props", "--property", "gpu")
        assert fleet.json("flavor", "show", "cp-props")["properties"] == {}
        rows = fleet.json("server", "create", "x", "--flavor", "cp-props",
                          "--image", "lab-guest", "--dry-run")
        assert "chosen" in {r["Result"] for r in rows}
    finally:
        fleet.cli("flavor", "delete", "cp-props", check=False)

    servers.append("cp-pinned")
    fleet.create("cp-pinned", "lab.small", "--host", h1)
    rc, _, err = fleet.cli("host", "delete", h1, check=False)
    assert rc == 2 and "Traceback" not in err
    address = fleet.hosts[h3]["address"]
    fleet.cli("host", "delete", h3)
    try:
        assert h3 not in {h["Name"] for h in fleet.json("host", "list")}
    finally:
        fleet.cli("host", "add", h3, "--address", address)
    assert _host_state(fleet, h3) == "up"
