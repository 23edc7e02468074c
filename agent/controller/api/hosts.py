"""API: hosts and availability zones, host states and fencing."""
from agent.common.errors import Conflict
from agent.controller import fencing
from agent.controller.api.ha import recovery_fields
from agent.controller.api.views import host_row


def _usage(svc):
    used = {}
    for alloc in svc.store.list_allocations():
        u = used.setdefault(alloc["host"], {"vcpus": 0, "ram_mb": 0})
        u["vcpus"] += alloc["vcpus"]
        u["ram_mb"] += alloc["ram_mb"]
    return used


def _row(svc, host, used, counts):
    h = dict(host)
    u = used.get(h["name"], {"vcpus": 0, "ram_mb": 0})
    h["vcpus_allocated"], h["memory_mb_allocated"] = u["vcpus"], u["ram_mb"]
    return host_row(h, svc.store.host_availability_zone(h["name"]),
                    counts.get(h["name"], 0))


def host_list(svc):
    used = _usage(svc)
    counts = {}
    for inst in svc.store.list_instances():
        if inst["host"]:
            counts[inst["host"]] = counts.get(inst["host"], 0) + 1
    return [_row(svc, h, used, counts) for h in svc.store.list_hosts()]


def host_show(svc, name):
    """The host record, its fence options masked, and why it is in its
    state (``reason``)."""
    host = svc.store.get_host(name)
    out = dict(host)
    out["fence_options"] = fencing.masked(host["fence_options"])
    out["reason"] = fencing.shown_reason(host)
    out["availability_zone"] = svc.store.host_availability_zone(name)
    out["aggregates"] = [a["name"] for a in svc.store.list_aggregates()
                         if name in a["hosts"]]
    out["instances"] = [i["name"] for i in
                        svc.store.list_instances(host=name)]
    out.update(recovery_fields(svc, host))
    leases = getattr(svc, "leases", None)   # None: [ha] enabled is false
    if leases is not None:
        out.update(leases.status(name))
    return out


def host_lease_verdict(svc, name):
    """Whether host ``name`` has fenced itself (agent.controller.
    self_fence): {"state", "reason"}; recovery acts on "fenced" only."""
    svc.store.get_host(name)
    if getattr(svc, "leases", None) is None:
        return {"state": "unknown", "reason": "[ha] enabled is false: no "
                                              "leases are granted"}
    verdict = svc.leases.verdict(name)
    return {"state": verdict.state, "reason": verdict.reason}


def host_add(svc, name, address):
    svc.hosts.register(name, address)
    return host_show(svc, name)


def host_delete(svc, name):
    """Forget a host with no instances (the store refuses otherwise)."""
    svc.store.delete_host(name)
    svc.hosts.forget(name)


def host_enable(svc, name):
    svc.store.enable_host(name)
    return host_show(svc, name)


def host_disable(svc, name, reason=None):
    svc.store.disable_host(name, reason)
    return host_show(svc, name)


def host_set_down(svc, name):
    """``host set --down``: the operator declares the host off."""
    svc.store.set_host_forced_down(name, True)
    return host_show(svc, name)


def host_set_up(svc, name):
    """``host set --up``: clear the operator's down and a fence; refused
    while evacuations from the host are unfinished or a fence of it runs.
    The host is not marked up here: the poller's return path does that
    once it answers (and is cleaned)."""
    busy = fencing.fence_in_progress(svc.store, name)
    if busy is not None:
        raise Conflict(f"host {name}: a fence is in progress (task {busy})")
    svc.store.set_host_forced_down(name, False)
    return host_show(svc, name)


def host_set_fence(svc, name, agent=None, options=None):
    """The host's fence method: a ClusterLabs fence agent (a name found in
    [fencing] agent_dirs, or an absolute path) and its options; ``agent``
    None clears it."""
    svc.store.get_host(name)
    if agent is not None:
        fencing.resolve_agent(agent)
    svc.store.set_fence_method(name, agent, options)
    return host_show(svc, name)


def host_fence(svc, name):
    """``host fence``: run the host's fence agent as a task."""
    return {"host": name,
            "task_id": svc.admission.submit_host("fence", name)}


def az_list(svc):
    zones = {}
    for host in svc.store.list_hosts():
        zone = svc.store.host_availability_zone(host["name"])
        zones.setdefault(zone, []).append(host)
    return [{"Zone Name": zone,
             "Zone Status": ("available" if any(
                 h["state"] == "up" and h["enabled"] for h in hosts)
                 else "not available"),
             "Hosts": [h["name"] for h in hosts]}
            for zone, hosts in sorted(zones.items())]


METHODS = {"host.list": host_list, "host.show": host_show,
           "host.add": host_add, "host.delete": host_delete,
           "host.enable": host_enable, "host.disable": host_disable,
           "host.set_down": host_set_down, "host.set_up": host_set_up,
           "host.set_fence": host_set_fence, "host.fence": host_fence,
           "host.lease_verdict": host_lease_verdict,
           "az.list": az_list}
