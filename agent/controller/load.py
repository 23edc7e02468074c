"""The fleet's measured load: a short history of what the agents sample
(agent.host.facts.load_sample, in every poll's host.facts answer).

Kept in memory only, HISTORY_S (10 minutes) of it: a restarted controller
starts with none and has rates again after two polls of a host.  Rates
come from consecutive samples of one host's counters (its own monotonic
clock); a pair that spans a move, or a counter that went back (a guest
restarted), is skipped, so a guest's CPU rate is known again one poll
interval after it arrives somewhere.

- a guest's CPU: the cores it used (CPU time over wall time), averaged
  over the pairs in the window asked;
- its memory: the last resident size seen;
- a host's CPU: the busy fraction of its CPUs (/proc/stat; lab hosts
  share one kernel and so report the same figure: the rebalance plan
  uses the sum of the host's guests instead, which is per host).
"""
import collections
import threading
import time

HISTORY_S = 600.0
DEFAULT_WINDOW_S = 60.0
SWEEP_S = 30.0      # how often guests no host reports any more are dropped


class LoadHistory:
    def __init__(self, history_s=HISTORY_S, clock=time.monotonic):
        self.history_s = history_s
        self.clock = clock
        self._lock = threading.Lock()
        # uuid -> deque of (seen_at, host, host_clock, cpu_time_ns, mem_kb)
        self._guests = collections.defaultdict(collections.deque)
        # host -> deque of (seen_at, host_clock, busy, total, ncpus)
        self._hosts = collections.defaultdict(collections.deque)
        self._swept = clock()

    def record(self, host, sample):
        """Keep one host's sample (the ``load`` of its facts; None:
        an agent that does not sample)."""
        if not sample:
            return
        now = self.clock()
        with self._lock:
            self._hosts[host].append((now, sample["clock"],
                                      sample["cpu_busy"],
                                      sample["cpu_total"],
                                      sample.get("ncpus", 1)))
            self._trim(self._hosts[host], now)
            for g in sample.get("guests", ()):
                series = self._guests[g["uuid"]]
                series.append((now, host, sample["clock"], g["cpu_time_ns"],
                               g["memory_kb"]))
                self._trim(series, now)
            if now - self._swept >= SWEEP_S:
                self._swept = now
                for uuid, series in list(self._guests.items()):
                    self._trim(series, now)
                    if not series:
                        del self._guests[uuid]

    def _trim(self, series, now):
        while series and now - series[0][0] > self.history_s:
            series.popleft()

    def guest_cpu(self, uuid, window_s=DEFAULT_WINDOW_S):
        """Cores the guest used over the last ``window_s`` seconds, or
        None before two samples of it on one host."""
        with self._lock:
            series = list(self._guests.get(uuid, ()))
        now = self.clock()
        used = spent = 0.0
        for a, b in zip(series, series[1:], strict=False):
            if now - b[0] > window_s or a[1] != b[1]:
                continue
            dt, dcpu = b[2] - a[2], b[3] - a[3]
            if dt <= 0 or dcpu < 0:
                continue
            used += dcpu / 1e9
            spent += dt
        return used / spent if spent else None

    def guest_memory_mb(self, uuid):
        with self._lock:
            series = self._guests.get(uuid)
            return series[-1][4] / 1024 if series else None

    def guest_host(self, uuid):
        """The host whose last poll reported the guest, or None."""
        with self._lock:
            series = self._guests.get(uuid)
            return series[-1][1] if series else None

    def host_cpu(self, host, window_s=DEFAULT_WINDOW_S):
        """The busy fraction of the host's CPUs, or None."""
        with self._lock:
            series = list(self._hosts.get(host, ()))
        now = self.clock()
        busy = total = 0
        for a, b in zip(series, series[1:], strict=False):
            if now - b[0] > window_s or b[3] < a[3]:
                continue
            busy += b[2] - a[2]
            total += b[3] - a[3]
        return busy / total if total else None

    def usage(self, window_s=DEFAULT_WINDOW_S):
        """{uuid: {"cpu": cores or None, "memory_mb": MiB or None}} of
        every guest seen in the history."""
        with self._lock:
            uuids = list(self._guests)
        return {u: {"cpu": self.guest_cpu(u, window_s),
                    "memory_mb": self.guest_memory_mb(u)} for u in uuids}
