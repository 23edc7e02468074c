"""The guests' usage counters every poll reads (agent.hypervisor.stats)."""
import libvirt

from agent.hypervisor import stats


class FakeConn:
    def __init__(self, rows):
        self.rows, self.asked = rows, []

    def get(self):
        return self

    def getAllDomainStats(self, what, flags):
        self.asked.append((what, flags))
        return self.rows


class Dom:
    def UUIDString(self):
        return "u-1"


def test_counters_of_running_domains_without_waiting_for_their_jobs():
    conn = FakeConn([(Dom(), {"cpu.time": 7, "balloon.rss": 300})])
    assert stats.domain_load(conn) == [
        {"uuid": "u-1", "cpu_time_ns": 7, "memory_kb": 300}]
    [(_what, flags)] = conn.asked
    # A migration's destination holds its domain in a job for as long
    # as the migration runs: a poll must not wait for it.
    assert flags & libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT
    assert flags & libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE


def test_memory_falls_back_to_the_balloon_size():
    conn = FakeConn([(Dom(), {"balloon.current": 512})])
    assert stats.domain_load(conn)[0]["memory_kb"] == 512
