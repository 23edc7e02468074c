"""The namespace lab: real, separate hypervisor hosts on one machine."""
import contextlib
import io
import json
import os
import signal
import subprocess
import time
import uuid

import libvirt
import pytest

from agent.cli import main as cli
from agent.common.errors import CommandFailed, Conflict
from agent.lab import netns


SSH_STRICT = ["ssh", "-o", "BatchMode=yes", "-o",
              "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=5"]


def test_each_host_runs_its_own_libvirtd(lab_hosts):
    assert len(lab_hosts) == 3
    uuids = set()
    for host in lab_hosts:
        assert host["state"] == "up", host
        conn = libvirt.open(host["libvirt_uri"])
        try:
            assert conn.getHostname() == host["name"]
            caps = conn.getCapabilities()
        finally:
            conn.close()
        assert f"<uuid>{host['host_uuid']}</uuid>" in caps
        uuids.add(host["host_uuid"])
    assert len(uuids) == len(lab_hosts)


def test_a_domain_defined_on_one_host_is_not_on_another(lab_hosts):
    first, second = lab_hosts[:2]
    name = f"lab-probe-{uuid.uuid4().hex[:8]}"
    xml = (f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>64"
           "</memory><os><type arch='x86_64'>hvm</type></os>"
           "<features><acpi/></features></domain>")
    a = libvirt.open(first["libvirt_uri"])
    b = libvirt.open(second["libvirt_uri"])
    try:
        dom = a.defineXML(xml)
        try:
            assert name in a.listDefinedDomains()
            assert name not in b.listDefinedDomains()
        finally:
            dom.undefine()
    finally:
        a.close()
        b.close()


def test_ssh_between_hosts_with_strict_host_keys(lab, lab_hosts):
    first, second = lab_hosts[:2]
    for target in (second["name"], second["ssh_address"]):
        out = lab.host_exec(first["name"],
                            SSH_STRICT + [f"root@{target}", "hostname"])
        assert out.strip() == second["name"]


def test_controller_ssh_checks_host_keys(lab, lab_hosts, tmp_path):
    ssh = lab.controller_ssh
    host = lab_hosts[0]
    base = SSH_STRICT + ["-i", ssh["private_key"], "-o",
                         "GlobalKnownHostsFile=/dev/null"]
    out = subprocess.run(
        base + ["-o", f"UserKnownHostsFile={ssh['known_hosts']}",
                f"root@{host['ssh_address']}", "hostname"],
        capture_output=True, text=True, check=True).stdout
    assert out.strip() == host["name"]
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    refused = subprocess.run(
        base + ["-o", f"UserKnownHostsFile={empty}",
                f"root@{host['ssh_address']}", "hostname"],
        capture_output=True, text=True)
    assert refused.returncode != 0
    assert "Host key verification failed" in refused.stderr


def test_shared_storage_is_seen_by_every_host(lab, lab_hosts):
    path = f"/var/lib/drover-shared/instances/probe-{uuid.uuid4().hex}"
    data = uuid.uuid4().hex
    writer, *readers = [h["name"] for h in lab_hosts]
    lab.host_exec(writer, ["tee", path], input=data)
    try:
        for reader in readers:
            assert lab.host_exec(reader, ["cat", path]) == data
    finally:
        lab.host_exec(writer, ["rm", "-f", path])


def test_local_storage_is_not_shared(lab, lab_hosts):
    path = f"/var/lib/drover/instances/probe-{uuid.uuid4().hex}"
    first, second = lab_hosts[0]["name"], lab_hosts[1]["name"]
    lab.host_exec(first, ["tee", path], input="local")
    try:
        assert lab.host_exec(first, ["cat", path]) == "local"
        with pytest.raises(CommandFailed):
            lab.host_exec(second, ["cat", path])
        host_side = os.path.join(lab_hosts[0]["local_storage_dir"],
                                 "instances", os.path.basename(path))
        assert os.path.exists(host_side)
    finally:
        lab.host_exec(first, ["rm", "-f", path])


def test_up_twice_changes_nothing(lab):
    before = lab.status()
    lab.up(len(before))
    assert lab.status() == before
    assert all(h["state"] == "up" for h in before)


def test_status_json_from_the_cli(lab):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = cli.main(["lab", "status", "--lab-dir", lab.lab_dir,
                       "--name", lab.plan.name,
                       "--network", str(lab.plan.network), "-f", "json"])
    assert rc == 0
    rows = json.loads(out.getvalue())
    assert [r["name"] for r in rows] == [h["name"] for h in lab.status()]
    for row in rows:
        assert row["libvirt_uri"] == f"qemu+tcp://{row['address']}/system"
        assert row["ssh_address"] == row["address"]
        assert row["state"] == "up"


# -- labs of their own, to take down ---------------------------------------

def leftovers(the_lab, pids):
    """Everything of ``the_lab`` still on the machine."""
    prefix = f"{the_lab.plan.name}-"
    found = [f"netns {n}" for n in netns.netns_names()
             if n.startswith(prefix)]
    found += [f"link {n}" for n in netns.link_names()
              if n.startswith(prefix)]
    found += [f"process {p}" for p in pids if os.path.exists(f"/proc/{p}")]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/mountinfo") as f:
                if the_lab.lab_dir in f.read():
                    found.append(f"mounts of process {entry}")
        except OSError:      # it exited meanwhile
            pass
    return found


def all_pids(the_lab):
    data = json.load(open(os.path.join(the_lab.lab_dir, "state.json")))
    pids = [d["pid"] for d in data["daemons"]]
    for entry in data["hosts"].values():
        pids += [entry["keeper"]["pid"], entry["outer"]["pid"]]
    return pids


def test_down_leaves_nothing_behind(lab_factory):
    own_lab = lab_factory(2)
    own_lab.start_daemon("h1", "agent", ["sleep", "600"])
    own_lab.start_daemon(None, "controller", ["sleep", "600"])
    session = subprocess.Popen(  # a command inside a host, left running
        own_lab.host_argv("h2", ["sleep", "600"]))
    pids = all_pids(own_lab)
    started = time.monotonic()
    own_lab.down()
    took = time.monotonic() - started
    session.wait(timeout=5)
    assert leftovers(own_lab, pids) == []
    assert own_lab.status() == []
    own_lab.down()                                  # idempotent
    assert took < 10


def test_up_after_a_crash_clears_leftovers(lab_factory):
    own_lab = lab_factory(1)
    keeper = own_lab.status()[0]["keeper_pid"]
    old_pids = all_pids(own_lab)
    os.kill(keeper, signal.SIGKILL)          # the host dies...
    os.unlink(os.path.join(own_lab.lab_dir, "state.json"))  # ...and state
    rows = own_lab.up(1)
    assert rows[0]["state"] == "up"
    assert rows[0]["keeper_pid"] != keeper
    new_pids = all_pids(own_lab)
    own_lab.down()
    assert leftovers(own_lab, old_pids + new_pids) == []


def test_a_running_lab_keeps_its_name(lab, tmp_path):
    from agent.lab.lab import Lab
    other = Lab(str(tmp_path / "other"), lab.plan.name, "198.18.80.0/24")
    for action in (lambda: other.up(1), other.down):
        with pytest.raises(Conflict, match="used by the lab in"):
            action()
    assert all(h["state"] == "up" for h in lab.status())


def test_guest_bridge_keeps_its_uplinks_mac(lab_hosts):
    """br-guest has eth0's MAC, set (3) rather than computed from its ports
    (1): a guest's tap joining it cannot change it."""
    for host in lab_hosts:
        ns = host["netns"]
        assert netns.link_mac("br-guest", ns) == netns.link_mac("eth0", ns)
        kind = subprocess.run(
            ["ip", "netns", "exec", ns, "cat",
             "/sys/class/net/br-guest/addr_assign_type"],
            capture_output=True, text=True, check=True).stdout
        assert kind.strip() == "3", host["name"]
