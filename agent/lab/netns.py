"""The lab's network: a root bridge, and per host a network namespace
joined to it by a veth pair whose inner end sits in the host's guest
bridge (so guests of every host share one L2 segment)."""
import ipaddress
import json
import re
import time

from agent.common import process
from agent.common.errors import Conflict, DroverError
from agent.lab.plan import GUEST_BRIDGE, MAX_HOSTS

# Bridged lab traffic must not depend on the machine's iptables rules.
_BRIDGE_OPTS = ["type", "bridge", "nf_call_iptables", "0",
                "nf_call_ip6tables", "0", "nf_call_arptables", "0"]


def _batch(lines, netns=None):
    argv = ["ip"] + (["-n", netns] if netns else []) + ["-batch", "-"]
    process.run(argv, input="".join(" ".join(line) + "\n" for line in lines))


def _links():
    return json.loads(process.run(["ip", "-j", "addr", "show"]) or "[]")


def link_names():
    return [link["ifname"] for link in _links()]


def netns_names():
    out = process.run(["ip", "-j", "netns", "list"]) or "[]"
    return [ns["name"] for ns in json.loads(out)]


def check_network_free(plan):
    """Refuse a network another interface of the root namespace uses."""
    for link in _links():
        if link["ifname"] == plan.bridge:
            continue
        for addr in link.get("addr_info", []):
            if addr.get("family") != "inet":
                continue
            net = ipaddress.ip_network(
                f"{addr['local']}/{addr['prefixlen']}", strict=False)
            if net.overlaps(plan.network):
                raise Conflict(f"network {plan.network} overlaps "
                               f"{net} on {link['ifname']}")


def ensure_bridge(plan):
    if plan.bridge in link_names():
        return
    _batch([["link", "add", plan.bridge, *_BRIDGE_OPTS],
            ["addr", "add", f"{plan.gateway}/{plan.network.prefixlen}",
             "dev", plan.bridge],
            ["link", "set", plan.bridge, "up"]])


def add_host(plan, host):
    """Create the host's namespace, veth pair and guest bridge.

    The guest bridge takes its uplink's (eth0's) MAC for good.  Left to
    itself Linux gives a bridge the lowest MAC of its ports, which is a
    guest's tap (fe:54:...) whenever eth0's sorts above it; the tap of that
    guest on another host has the same MAC, so during a live migration the
    other host's bridge drops every frame from this one as "own address".
    """
    peer = ["eth0"] + (["address", host.eth0_mac] if host.eth0_mac else [])
    _batch([["netns", "add", host.netns],
            ["link", "add", host.veth, "type", "veth", "peer", "name",
             *peer, "netns", host.netns],
            ["link", "set", host.veth, "master", plan.bridge, "up"]])
    uplink_mac = link_mac("eth0", host.netns)
    _batch([["link", "set", "lo", "up"],
            ["link", "add", GUEST_BRIDGE, "address", uplink_mac,
             *_BRIDGE_OPTS],
            ["link", "set", "eth0", "master", GUEST_BRIDGE, "up"],
            ["addr", "add", f"{host.address}/{host.prefixlen}", "dev",
             GUEST_BRIDGE],
            ["link", "set", GUEST_BRIDGE, "up"]], netns=host.netns)


def link_mac(name, netns=None):
    """The MAC of interface ``name`` (in ``netns``)."""
    argv = ["ip"] + (["-n", netns] if netns else []) + \
        ["-j", "link", "show", "dev", name]
    return json.loads(process.run(argv))[0]["address"]


def remove_host(host):
    """Delete the host's namespace and veth; missing parts are fine."""
    if host.netns in netns_names():
        process.run(["ip", "netns", "del", host.netns])
    # Deleting the namespace destroys the veth pair, a moment later: the
    # root end may vanish between the look and the delete.
    if host.veth in link_names():
        process.run(["ip", "link", "del", host.veth], check=False)
    if host.veth in link_names():
        process.run(["ip", "link", "del", host.veth])


def set_link(host, up, timeout=5.0):
    """Bring ``host``'s root-side veth up or down: down, the host's eth0
    loses its carrier and nothing reaches it or leaves it.  Up returns
    once both ends have their carrier (the kernel notices that a moment
    later)."""
    if host.veth not in link_names():
        return
    process.run(["ip", "link", "set", host.veth, "up" if up else "down"])
    deadline = time.monotonic() + timeout
    while up and not (_oper_up(host.veth) and _oper_up("eth0", host.netns)):
        if time.monotonic() > deadline:
            raise DroverError(f"{host.name}: link not up after "
                              f"{timeout:.0f} s")
        time.sleep(0.02)


def _oper_up(name, netns=None):
    argv = ["ip"] + (["-n", netns] if netns else []) + \
        ["-j", "link", "show", "dev", name]
    return json.loads(process.run(argv))[0].get("operstate") == "UP"


def remove_bridge(plan):
    if plan.bridge in link_names():
        process.run(["ip", "link", "del", plan.bridge])


def host_indexes(plan):
    """Indexes of hosts whose namespace or veth exists (leftovers too)."""
    pattern = re.compile(rf"^{re.escape(plan.name)}-h(\d+)$")
    found = set()
    for name in netns_names() + link_names():
        m = pattern.match(name)
        if m and 1 <= int(m.group(1)) <= MAX_HOSTS:
            found.add(int(m.group(1)))
    return sorted(found)
