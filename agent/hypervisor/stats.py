"""Usage counters of running domains (libvirt's bulk domain stats), for
the controller's load history (agent.controller.load)."""
import libvirt

STATS = libvirt.VIR_DOMAIN_STATS_CPU_TOTAL | libvirt.VIR_DOMAIN_STATS_BALLOON
# NOWAIT: what libvirt has at once.  Without it the balloon statistics
# of a domain in a migration job wait for the job: on a live migration's
# destination every poll's host.facts then hung until the migration
# ended, and a migration longer than [controller] host_down_after made
# the controller mark the destination down.
FLAGS = (libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE
         | libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT)


def domain_load(conn):
    """[{uuid, cpu_time_ns, memory_kb}] of every running domain:
    ``cpu_time_ns`` the guest's total CPU time (a counter), ``memory_kb``
    its resident memory (balloon.rss, else the balloon's current size)."""
    out = []
    for dom, stats in conn.get().getAllDomainStats(STATS, FLAGS):
        out.append({
            "uuid": dom.UUIDString(),
            "cpu_time_ns": int(stats.get("cpu.time", 0)),
            "memory_kb": int(stats.get("balloon.rss")
                             or stats.get("balloon.current", 0))})
    return out
