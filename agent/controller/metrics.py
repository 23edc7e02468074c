"""The controller's Prometheus endpoint: off by default, on with
[controller] metrics_listen = host:port (``GET /metrics``).

Everything is derived from the store's records at each scrape, so a new
operation (its task kind) or a second controller's work shows up with no
wiring:

- ``drover_hosts{state}``, ``drover_instances{status}``: counted in SQL;
- ``drover_tasks_total{kind,result}`` and the histogram
  ``drover_task_duration_seconds{kind,result}`` (creation to end) for
  ended tasks (result: done, failed, superseded), and
  ``drover_tasks_running{kind}``;
- ``drover_migrations_total{type,result}``, the histograms
  ``drover_migration_duration_seconds{type}`` (a live migration's own
  elapsed time; for a cold move, creation to its final status, which
  includes the wait for confirmation) and
  ``drover_migration_downtime_seconds`` (live migrations);
- ``drover_evacuations_total{result}`` (migrations of type evacuation) and
  ``drover_recoveries_total{result}`` (tasks of the RECOVERY_KINDS).

Ended tasks and migrations are counted once each: a scrape reads only
the records above the highest id below which all had ended (a task that
runs for long keeps those after it in every read until it ends).  The
counts start from the store's records when the controller starts.
"""
import datetime
import logging
import threading

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily)

from agent.common.errors import InvalidInput
from agent.controller import states

LOG = logging.getLogger(__name__)

HOST_STATES = ("up", "down", "fenced")
ENDED_TASKS = ("done", "failed", "superseded")
RECOVERY_KINDS = ("recover_host",)
EVACUATION = "evacuation"
DURATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
DOWNTIME_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10)


def parse_listen(value):
    """(host, port) of ``host:port`` (IPv6 as ``[addr]:port``)."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or \
            not 0 < int(port) < 65536:
        raise InvalidInput(f"[controller] metrics_listen: {value!r} is not "
                           "host:port")
    return host, int(port)


def _seconds(start, end):
    if start is None or end is None:
        return None
    if isinstance(start, str):
        start = datetime.datetime.fromisoformat(start.rstrip("Z"))
        end = datetime.datetime.fromisoformat(end.rstrip("Z"))
    return max((end - start).total_seconds(), 0.0)


class Histogram:
    """Observations into cumulative buckets, as Prometheus shows them."""

    def __init__(self, buckets):
        self.bounds = tuple(buckets)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value):
        self.sum += value
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
                return
        self.counts[-1] += 1

    def buckets(self):
        out, total = [], 0
        for bound, count in zip(self.bounds + (float("inf"),), self.counts,
                                strict=True):
            total += count
            out.append(("+Inf" if bound == float("inf") else f"{bound:g}",
                        total))
        return out


class Tally:
    """Records (id first) counted once each, when ``ended(row)``."""

    def __init__(self, ended):
        self.ended = ended
        self.floor = 0          # every record up to this id is counted
        self.counted = set()    # ids above the floor already counted

    def fresh(self, rows):
        """The rows (by id, all above ``floor``) that ended since the last
        call; moves the floor up past those that all ended."""
        new, blocked = [], False
        for row in rows:
            rid = row[0]
            done = rid in self.counted or self.ended(row)
            if done and rid not in self.counted:
                new.append(row)
                self.counted.add(rid)
            if not done:
                blocked = True
            elif not blocked:
                self.floor = rid
                self.counted.discard(rid)
        return new


class StoreCollector:
    """A prometheus_client collector over the store's records."""

    def __init__(self, store):
        self.store = store
        self.tasks = Tally(lambda row: row[2] in ENDED_TASKS)
        self.migrations = Tally(
            lambda row: row[2] in states.MIGRATION_FINAL)
        self.task_counts = {}       # (kind, result) -> Histogram
        self.migration_counts = {}  # (type, result) -> number
        self.migration_durations = {}   # type -> Histogram
        self.downtime = Histogram(DOWNTIME_BUCKETS)
        self._lock = threading.Lock()   # scrapes may come at once

    def collect(self):
        with self._lock:
            families = [self._hosts(), self._instances()]
            running = self._read_tasks()
            self._read_migrations()
            families += self._task_metrics(running)
            families += self._migration_metrics()
        return families

    def _hosts(self):
        counts = dict.fromkeys(HOST_STATES, 0)
        counts.update(self.store.count_hosts())
        g = GaugeMetricFamily("drover_hosts", "Hosts by state.",
                              labels=["state"])
        for state, n in sorted(counts.items()):
            g.add_metric([state], n)
        return g

    def _instances(self):
        counts = {}
        for vm_state, task_state, n in self.store.count_instances():
            status = states.status(vm_state, task_state)
            counts[status] = counts.get(status, 0) + n
        g = GaugeMetricFamily("drover_instances",
                              "Instances (not deleted) by status.",
                              labels=["status"])
        for status, n in sorted(counts.items()):
            g.add_metric([status], n)
        return g

    def _read_tasks(self):
        rows = self.store.tasks_after(self.tasks.floor)
        for _, kind, state, created, updated in self.tasks.fresh(rows):
            hist = self.task_counts.setdefault(
                (kind, state), Histogram(DURATION_BUCKETS))
            hist.observe(_seconds(created, updated) or 0.0)
        running = {}
        for _, kind, state, _, _ in rows:
            if state not in ENDED_TASKS:
                running[kind] = running.get(kind, 0) + 1
        return running

    def _read_migrations(self):
        rows = self.store.migrations_after(self.migrations.floor)
        for _, mtype, status, created, updated, progress in \
                self.migrations.fresh(rows):
            key = (mtype, status)
            self.migration_counts[key] = \
                self.migration_counts.get(key, 0) + 1
            progress = progress or {}
            elapsed = progress.get("elapsed")
            if elapsed is None:
                elapsed = _seconds(created, updated)
            if elapsed is not None:
                self.migration_durations.setdefault(
                    mtype, Histogram(DURATION_BUCKETS)).observe(
                        float(elapsed))
            if progress.get("downtime_ms") is not None:
                self.downtime.observe(progress["downtime_ms"] / 1000.0)

    def _task_metrics(self, running):
        total = CounterMetricFamily(
            "drover_tasks", "Ended tasks by kind and result.",
            labels=["kind", "result"])
        duration = HistogramMetricFamily(
            "drover_task_duration_seconds",
            "Seconds from a task's creation to its end.",
            labels=["kind", "result"])
        recoveries = CounterMetricFamily(
            "drover_recoveries", "Host recoveries (tasks of kind "
            + ", ".join(RECOVERY_KINDS) + ") by result.", labels=["result"])
        for result in ENDED_TASKS:
            recoveries.add_metric([result], 0)
        by_result = {}
        for (kind, result), hist in sorted(self.task_counts.items()):
            total.add_metric([kind, result], sum(hist.counts))
            duration.add_metric([kind, result], hist.buckets(), hist.sum)
            if kind in RECOVERY_KINDS:
                by_result[result] = by_result.get(result, 0) + \
                    sum(hist.counts)
        for result, n in by_result.items():
            recoveries.add_metric([result], n)
        gauge = GaugeMetricFamily("drover_tasks_running",
                                  "Tasks running or undoing, by kind.",
                                  labels=["kind"])
        for kind, n in sorted(running.items()):
            gauge.add_metric([kind], n)
        return total, duration, recoveries, gauge

    def _migration_metrics(self):
        total = CounterMetricFamily(
            "drover_migrations", "Migrations that reached a final status, "
            "by type and status.", labels=["type", "result"])
        evac = CounterMetricFamily(
            "drover_evacuations", "Evacuations (migrations of type "
            "evacuation) by final status.", labels=["result"])
        evacuated = {}
        for (mtype, result), n in sorted(self.migration_counts.items()):
            total.add_metric([mtype, result], n)
            if mtype == EVACUATION:
                evacuated[result] = evacuated.get(result, 0) + n
        for result, n in sorted(evacuated.items()):
            evac.add_metric([result], n)
        duration = HistogramMetricFamily(
            "drover_migration_duration_seconds",
            "Seconds a migration took, by type (live: the migration job's "
            "own time; cold: creation to final status).", labels=["type"])
        for mtype, hist in sorted(self.migration_durations.items()):
            duration.add_metric([mtype], hist.buckets(), hist.sum)
        downtime = HistogramMetricFamily(
            "drover_migration_downtime_seconds",
            "The guest's downtime in a live migration (libvirt's figure).")
        downtime.add_metric([], self.downtime.buckets(), self.downtime.sum)
        return total, evac, duration, downtime


def registry(store):
    """A registry holding the store's collector only."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StoreCollector(store))
    return reg


def start(store, listen):
    """Serve /metrics on ``listen`` (host:port) in a daemon thread;
    returns the HTTP server (``shutdown()`` stops it), or None when
    ``listen`` is empty (off)."""
    if not listen:
        return None
    host, port = parse_listen(listen)
    server, _thread = start_http_server(port, addr=host,
                                        registry=registry(store))
    LOG.info("metrics on http://%s:%d/metrics", host, port)
    return server
