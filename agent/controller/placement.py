"""Choosing a host and claiming its capacity, shared by every operation
that places an instance (boot, migrate, resize, live migration,
evacuation)."""
from agent.controller.db.placement import ClaimFailed
from agent.controller.scheduler import (GroupSpec, NoValidHost, Policy,
                                       Request, select)
from agent.controller.scheduler.weighers import ram_order

# Hosts read per page when a placement reads them best first: the first
# page nearly always holds the host chosen (the narrowing leaves out the
# hosts without room), and one of 64 costs the store little more than
# one of 1.
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
    weighers.ram_order), the store reads the hosts the request may use
    (scheduler.prefilter) a page at a time in that order, and a page
    with a host that passes is a Decision: its best host is the best of
    the fleet, without reading or weighing the rest (its weights are
    relative to the page).  Otherwise one narrowed read.  Last, as a
    placement whose every claim lost its race needs, and when nothing
    passed, select() over every host: NoValidHost then says why each was
    rejected."""
    policy = Policy.from_conf()
    if ram_order(request, policy) is None:
        pages = [store.host_states(request, policy=policy)]
    else:
        pages = _pages(store, request, policy, page)
    for hosts in pages:
        try:
            yield select(request, hosts, policy)
        except NoValidHost:
            continue
    yield select(request, store.host_states(), policy)


def _pages(store, request, policy, page):
    offset = 0
    while True:
        hosts = store.host_states(request, limit=page, offset=offset,
                                  policy=policy)
        yield hosts
        if len(hosts) < page:
            return
        offset += page


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
