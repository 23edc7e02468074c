"""A host whose agent is gone, on the real lab: its instances say so,
deleting one of them works at once and is finished on the host when it
returns, and a drain of it is refused."""

import pytest
from helpers import wait_for

pytestmark = pytest.mark.integration


def _host(fleet, name):
    return fleet.json("host", "show", name)


def _used(fleet, name):
    row = next(h for h in fleet.json("host", "list") if h["Name"] == name)
    return row["vCPUs Used"], row["RAM MB Used"]


def _exists(fleet, host, path):
    out = fleet.host_exec(host, ["sh", "-c", 'test -e "$1" && echo yes',
                                 "sh", path], check=False)
    return "yes" in (out or "")


def test_a_dead_hosts_instances_delete_and_drain(fleet, servers):
    from agent.lab import fleet as lab_fleet
    dead, other = sorted(fleet.hosts)[1], sorted(fleet.hosts)[0]
    servers += ["dh-live", "dh-other", "dh-local", "dh-shared"]
    live = fleet.create("dh-live", "lab.small", "--host", dead)
    fleet.create("dh-other", "lab.small", "--host", other)
    before = _used(fleet, dead)
    local = fleet.create("dh-local", "lab.small", "--host", dead)
    shared = fleet.create("dh-shared", "lab.small", "--host", dead,
                          "--storage", "shared")
    info = _host(fleet, dead)
    dirs = {local["id"]: f"{info['instances_path']}/{local['id']}",
            shared["id"]: f"{info['shared_instances_path']}/{shared['id']}"}
    for path in dirs.values():
        assert _exists(fleet, dead, path), path

    fleet.lab.stop_daemon(dead, lab_fleet.AGENT)
    try:
        wait_for(lambda: _host(fleet, dead)["state"] == "down", 30,
                  f"{dead} not marked down")
        # Its guests still run in the host's libvirt; drover says it
        # cannot tell.
        assert fleet.domains(dead)[local["id"]] == "running"
        show = fleet.server("dh-live")
        assert show["host_status"] == "DOWN"
        assert show["power_state"] == "unknown"
        host = _host(fleet, dead)
        assert host["down_reason"], host
        assert host["last_seen"]
        row = next(h for h in fleet.json("host", "list")
                   if h["Name"] == dead)
        assert row["Down Reason"] == host["down_reason"]
        assert row["Last Seen"] == host["last_seen"]
        rows = {s["Name"]: s for s in fleet.json("server", "list")}
        assert rows["dh-live"]["Host Status"] == "DOWN"
        assert rows["dh-other"]["Host Status"] == "UP"

        # Delete: done at once, its claim released.
        for name in ("dh-local", "dh-shared"):
            fleet.cli("server", "delete", name, "--wait")
            rc, _, err = fleet.cli("server", "show", name, check=False)
            assert rc == 2 and "Traceback" not in err
        assert _used(fleet, dead) == before
        # ... but nothing was removed on the host yet: it cannot be reached.
        assert local["id"] in fleet.domains(dead)
        assert all(_exists(fleet, dead, p) for p in dirs.values())

        # Drain: refused, one line, pointing to evacuation.
        rc, out, err = fleet.cli("host", "drain", dead, "--wait",
                                 check=False)
        assert rc == 2, (rc, out, err)
        assert "evacuat" in err and len(err.strip().splitlines()) == 1
        assert "Traceback" not in err
        assert _host(fleet, dead)["enabled"]     # refused before anything
    finally:
        lab_fleet.start(fleet.lab, image_path=None, progress=lambda m: None)

    wait_for(lambda: _host(fleet, dead)["state"] == "up", 60,
              f"{dead} not back up")
    # The host counts as up only once its clean-ups are done.
    domains = fleet.domains(dead)
    for inst in (local, shared):
        assert inst["id"] not in domains
    for path in dirs.values():
        assert not _exists(fleet, dead, path), path
    # The instance that lives there was not touched.
    assert domains[live["id"]] == "running"
    assert _exists(fleet, dead, f"{info['instances_path']}/{live['id']}")
    assert _host(fleet, dead)["down_reason"] is None
    rows = {s["Name"]: s for s in fleet.json("server", "list")}
    assert rows["dh-live"]["Host Status"] == "UP"
    assert rows["dh-other"]["Host Status"] == "UP"
    wait_for(lambda: fleet.server("dh-live")["power_state"] == "Running",
              30, "dh-live's power state not synced again")
