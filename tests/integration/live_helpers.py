"""What the live-migration tests and benchmark share: the guest's
heartbeat, and lab agents restarted with extra [migration] options."""
import configparser
import contextlib
import re
import time

from agent.lab import fleet as lab_fleet

HEARTBEAT = re.compile(r"drover-heartbeat uptime=([0-9.]+) boot=(\S+)")


def heartbeat(fleet, name, newer_than=-1.0, timeout=60):
    """The guest's latest (uptime, boot id) from its console log, once its
    uptime passes ``newer_than``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        beats = HEARTBEAT.findall(fleet.call("server.console_log", name=name,
                                             lines=20))
        if beats and float(beats[-1][0]) > newer_than:
            return float(beats[-1][0]), beats[-1][1]
        time.sleep(0.5)
    raise AssertionError(f"no heartbeat of {name} after uptime {newer_than}")


def _restart_agent(fleet, host, conf_path):
    lab = fleet.lab
    lab.stop_daemon(host, lab_fleet.AGENT)
    lab.start_daemon(host, lab_fleet.AGENT,
                     [lab_fleet._python(), "-m", "agent.host.daemon",
                      "--config-file", conf_path])
    lab.host_exec(host, [lab_fleet._python(), "-c", lab_fleet._WAIT_AGENT],
                  timeout=30)
    time.sleep(1)     # the controller's relay finds the new socket


@contextlib.contextmanager
def agent_options(fleet, host, **options):
    """Run ``host``'s agent with these [migration] options, then with the
    lab's own configuration again."""
    row = fleet.hosts[host]
    path = lab_fleet.agent_conf(fleet.lab, row)
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path)
    if not parser.has_section("migration"):
        parser.add_section("migration")
    for key, value in options.items():
        parser["migration"][key] = str(value)
    custom = path.replace(".conf", "-test.conf")
    with open(custom, "w") as f:
        parser.write(f)
    _restart_agent(fleet, host, custom)
    try:
        yield
    finally:
        _restart_agent(fleet, host, path)


def set_link(fleet, host, up):
    """Set ``host``'s uplink (its eth0, inside its own namespace) up or
    down: down, the host is cut off from every other host and the
    controller, as by a pulled cable."""
    fleet.host_exec(host, ["ip", "link", "set", "eth0",
                           "up" if up else "down"])


@contextlib.contextmanager
def cut_off(fleet, host):
    """``host`` unreachable inside the block, reachable again after."""
    set_link(fleet, host, False)
    try:
        yield
    finally:
        set_link(fleet, host, True)


def allocated(fleet, host):
    """(vCPUs, RAM MB) allocated on ``host``, as ``host list`` shows."""
    row = {r["Name"]: r for r in fleet.json("host", "list")}[host]
    return row["vCPUs Used"], row["RAM MB Used"]


def set_dirty_rate(ip, mbps, timeout=60):
    """Set the guest's drover-dirty workload to ``mbps`` MiB/s; a guest
    just moved (or busy under TCG) may take a while to answer."""
    from helpers import guest_get
    deadline = time.monotonic() + timeout
    while True:
        try:
            return guest_get(ip, f"/cgi-bin/dirty?mbps={int(mbps)}",
                             timeout=10)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
