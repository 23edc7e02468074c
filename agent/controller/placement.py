"""Choosing a host and claiming its capacity, shared by every operation
that places an instance (boot, migrate, resize, live migration,
evacuation)."""
from agent.controller.db.placement import ClaimFailed
from agent.controller.scheduler import (GroupSpec, NoValidHost, Policy,
                                       Request, select)
from agent.controller.scheduler.weighers import ram_order

# Hosts read first when a placement reads them best first: they nearly
# always hold the host chosen (the narrowing leaves out the hosts
# without room), and 64 cost the store little more than 1.
PAGE = 64


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
    request = request_for(flavor, group=store.instance_group(instance_uuid),
                          **request_args)
    lost = {}
    decision = None
    for decision in decisions(store, request):
        for host in decision.hosts:
            if host in lost:
                continue
            try:
                store.claim(host, consumer, flavor["vcpus"],
                            flavor["ram_mb"], flavor["disk_gb"],
                            instance_uuid=instance_uuid)
                return host
            except ClaimFailed as err:
                lost[host] = str(err)
    raise NoValidHost(decision, "; ".join(lost.values()))


def decisions(store, request, page=PAGE):
    """Decisions to claim from, best hosts first.

    When the weighers rank hosts by free RAM alone (scheduler
    weighers.ram_order), the store reads the ``page`` best of the hosts
    the request may use (scheduler.prefilter): when one passes, its best
    is the best of the fleet, found without reading or weighing the rest
    (the Decision's weights are relative to the page).  Then, or at
    once for other requests, every host the request may use (as many
    reads as before, however few pass: an affinity group's host, a
    property no SQL can match).  Last, as a placement whose every claim
    lost its race needs, and when nothing passed, select() over every
    host: NoValidHost then says why each was rejected."""
    policy = Policy.from_conf()
    for hosts in _reads(store, request, policy, page):
        try:
            yield select(request, hosts, policy)
        except NoValidHost:
            continue
    yield select(request, store.host_states(), policy)


def _reads(store, request, policy, page):
    if ram_order(request, policy) is not None:
        hosts = store.host_states(request, limit=page, policy=policy)
        yield hosts
        if len(hosts) < page:
            return          # that was every host the request may use
    yield store.host_states(request, policy=policy)


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
