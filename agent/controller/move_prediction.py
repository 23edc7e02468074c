"""The prediction of one live migration, from inputs measured now.

The source agent measures the guest (``migration.inputs``: memory, its
non-zero part, libvirt's dirty rate, the disk data of a block
migration) and reports its own [migration] policy, which its monitor
will enforce.  The bandwidth is, in this order:

1. "configured": the source agent's [migration] bandwidth limit;
2. "measured": the transfer rate of the latest completed live migration
   from the source to the destination that ran with no bandwidth cap
   (its record's progress: libvirt's memory_bps over the job, and the
   cap the job was started with).  A rate measured under a cap since
   lifted would predict the capped speed; a record that does not say
   its cap (older ones) is skipped too: a stale capped figure is worse
   than the assumed one;
3. "assumed": the controller's [migration] expected_bandwidth.

The pure model is agent.controller.prediction.predict.
"""
from agent.conf import CONF
from agent.controller import placement
from agent.controller.prediction import policy_kwargs, predict

MiB = 1 << 20
TYPE = "live-migration"
DIRTY_RATE_PERIOD_S = 1


def bandwidth(store, source, dest, policy):
    """(bytes/s, how it was found) between ``source`` and ``dest``."""
    if policy.get("bandwidth"):
        return policy["bandwidth"] * MiB, "configured"
    for mig in store.list_migrations(host=source):
        if mig["type"] != TYPE or mig["status"] != "completed" or \
                mig["source_host"] != source or mig["dest_host"] != dest:
            continue
        progress = mig.get("progress") or {}
        if progress.get("bandwidth_limit") != 0:    # capped, or not known
            continue
        rate = progress.get("transfer_rate") or 0
        if rate > 0:
            return rate, "measured"
    return CONF.migration.expected_bandwidth * MiB, "assumed"


def destination(store, inst):
    """The host the scheduler would choose now, or None (changes
    nothing: no claim)."""
    rows = placement.explain(
        store, inst["flavor"], ignore_hosts=(inst["host"],),
        availability_zone=inst["requested_availability_zone"])
    chosen = [r["Host"] for r in rows if r["Result"] == "chosen"]
    return chosen[0] if chosen else None


def predict_move(services, inst, dest, block=None):
    """The prediction of live-migrating ``inst`` (a store record) from
    its host to ``dest``, as a dict: the Prediction's fields and its
    inputs.  ``block`` None: a block migration unless on shared
    storage."""
    source = inst["host"]
    if block is None:
        block = inst["storage"] != "shared"
    got = services.hosts.call(source, "migration.inputs", uuid=inst["uuid"],
                              block_migration=bool(block),
                              seconds=DIRTY_RATE_PERIOD_S)
    bps, how = bandwidth(services.store, source, dest, got["policy"])
    disk = got["disk_bytes"] if block else 0
    prediction = predict(
        got["memory_bytes"], got["dirty_bytes_per_s"], bps, disk,
        resident_bytes=got["resident_bytes"],
        # Page sampling counts the distinct pages changed in its period:
        # the model takes that as the guest's working set.
        working_set_bytes=max(got["dirty_bytes_per_s"] * got["calc_seconds"],
                              1),
        setup_s=CONF.migration.expected_setup,
        **policy_kwargs(got["policy"], got["memory_bytes"], disk))
    return {**prediction.as_dict(), "source": source, "destination": dest,
            "block_migration": bool(block),
            "memory_bytes": got["memory_bytes"],
            "resident_bytes": got["resident_bytes"],
            "dirty_bytes_per_s": got["dirty_bytes_per_s"],
            "disk_bytes": disk, "bandwidth_bytes_per_s": int(bps),
            "bandwidth_source": how}


def row(inst, p):
    """A prediction dict as a CLI row."""
    return {"Server": inst["name"], "Source": p["source"],
            "Destination": p["destination"],
            "Verdict": p["verdict"],
            "Duration s": p["duration_s"],
            "Downtime ms": None if p["downtime_s"] is None
            else round(p["downtime_s"] * 1000),
            "Rounds": p["rounds"],
            "Memory MiB": p["memory_bytes"] // MiB,
            "Non-zero MiB": p["resident_bytes"] // MiB,
            "Dirty MiB/s": round(p["dirty_bytes_per_s"] / MiB, 1),
            "Disk MiB": p["disk_bytes"] // MiB,
            "Bandwidth MiB/s": f"{p['bandwidth_bytes_per_s'] / MiB:.0f} "
                               f"({p['bandwidth_source']})",
            "Reason": p["reason"]}
