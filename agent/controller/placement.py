"""Choosing a host and claiming its capacity, shared by every operation
that places an instance (boot, migrate, resize, live migration,
evacuation)."""
from agent.controller.db.placement import ClaimFailed
from agent.controller.scheduler import GroupSpec, NoValidHost, Request, select


def request_for(flavor, *, ignore_hosts=(), force_host=None,
                availability_zone=None, group=None):
    """A scheduler Request; ``group``: a store group record with
    ``hosts`` (Store.instance_group, Store.group_placement) or None."""
    spec = None if group is None else GroupSpec.from_record(group,
                                                            group["hosts"])
    return Request.for_flavor(flavor, ignore_hosts=frozenset(ignore_hosts),
                              force_host=force_host,
                              availability_zone=availability_zone,
                              group=spec)


def place(store, flavor, consumer, instance_uuid, **request_args):
    """Pick the best host that takes an atomic claim for ``consumer``.

    A claim already held by ``consumer`` (a resumed task) is kept.  Hosts
    that lose a race for their last capacity, or for the room their
    server group leaves (the claim checks the group again), are skipped;
    when every one does, NoValidHost names them.  The instance's server
    group is honoured wherever it is placed: boot and every move."""
    held = store.list_allocations(consumer=consumer)
    if held:
        return held[0]["host"]
    decision = choose(store, request_for(
        flavor, group=store.instance_group(instance_uuid), **request_args))
    lost = []
    for host in decision.hosts:
        try:
            store.claim(host, consumer, flavor["vcpus"], flavor["ram_mb"],
                        flavor["disk_gb"], instance_uuid=instance_uuid)
            return host
        except ClaimFailed as err:
            lost.append(str(err))
    raise NoValidHost(decision, "; ".join(lost))


def choose(store, request):
    """select() over the hosts the request may use (the store narrows its
    read to them, scheduler.prefilter); when none passes, over every host,
    so that NoValidHost says why each was rejected."""
    try:
        return select(request, store.host_states(request))
    except NoValidHost:
        return select(request, store.host_states())


def explain(store, flavor, **request_args):
    """Every host with its weight, or the filter that rejected it."""
    request = request_for(flavor, **request_args)
    hosts = store.host_states()
    try:
        decision = select(request, hosts)
    except NoValidHost as err:
        decision = err.decision
    rows = []
    for rank, cand in enumerate(decision.candidates):
        rows.append({"Host": cand.host,
                     "Result": "chosen" if rank == 0 else "candidate",
                     "Weight": round(cand.weight, 3), "Filter": None,
                     "Reason": None})
    for host, why in sorted(decision.rejected.items()):
        rows.append({"Host": host, "Result": "rejected", "Weight": None,
                     "Filter": why.filter, "Reason": why.reason})
    return rows
