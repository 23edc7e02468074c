"""The controller's Prometheus endpoint: values derived from the store's
records, checked before and after operations on the simulated fleet."""
import socket
import urllib.request

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent.common.errors import InvalidInput
from agent.controller import metrics
from sim_helpers import SimLab


@pytest.fixture
def lab(tmp_path):
    lab = SimLab(tmp_path, hosts=("h1", "h2"))
    yield lab
    lab.close()


def samples(text):
    """{(name, sorted labels): value} of a scrape."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def scrape(reg):
    return samples(generate_latest(reg).decode())


def value(got, name, **labels):
    return got.get((name, tuple(sorted(labels.items()))), 0)


def test_counts_follow_real_operations(lab):
    reg = metrics.registry(lab.store)
    before = scrape(reg)
    assert value(before, "drover_hosts", state="up") == 2
    assert value(before, "drover_tasks_total", kind="boot",
                 result="done") == 0
    assert lab.boot("vm1", host="h1")["state"] == "done"
    assert lab.boot("vm2", host="h1")["state"] == "done"
    assert lab.op("live", "vm1")["state"] == "done"
    lab.op("stop", "vm2")
    after = scrape(reg)
    assert value(after, "drover_instances", status="ACTIVE") == 1
    assert value(after, "drover_instances", status="SHUTOFF") == 1
    assert value(after, "drover_tasks_total", kind="boot",
                 result="done") == 2
    assert value(after, "drover_tasks_total", kind="live_migrate",
                 result="done") == 1
    assert value(after, "drover_task_duration_seconds_count", kind="boot",
                 result="done") == 2
    assert value(after, "drover_migrations_total", type="live-migration",
                 result="completed") == 1
    # The simulated agent reports 30 ms of downtime.
    assert value(after, "drover_migration_downtime_seconds_count") == 1
    assert value(after, "drover_migration_downtime_seconds_sum") == \
        pytest.approx(0.03)
    # A second scrape counts nothing twice.
    assert scrape(reg) == after


def test_new_task_kinds_and_recoveries_appear_without_wiring(lab):
    reg = metrics.registry(lab.store)
    for kind, state in (("recover_host", "done"), ("recover_host", "failed"),
                        ("rescue", "done")):
        lab.store.task_finish(lab.store.task_create(kind, {}), state)
    running = lab.store.task_create("shelve", {})
    got = scrape(reg)
    assert value(got, "drover_recoveries_total", result="done") == 1
    assert value(got, "drover_recoveries_total", result="failed") == 1
    assert value(got, "drover_tasks_total", kind="rescue",
                 result="done") == 1
    assert value(got, "drover_tasks_running", kind="shelve") == 1
    lab.store.task_finish(running, "done")
    got = scrape(reg)
    assert value(got, "drover_tasks_total", kind="shelve", result="done") \
        == 1
    assert value(got, "drover_tasks_running", kind="shelve") == 0


def test_tally_counts_each_record_once_whatever_the_order():
    tally = metrics.Tally(lambda row: row[1])
    assert tally.fresh([(1, True), (2, False), (3, True)]) == [(1, True),
                                                                (3, True)]
    assert tally.floor == 1
    assert tally.fresh([(2, True), (3, True), (4, True)]) == [(2, True),
                                                               (4, True)]
    assert tally.floor == 4 and tally.counted == set()


def test_endpoint_is_off_by_default_and_serves_when_asked(lab):
    assert metrics.start(lab.store, "") is None
    with socket.socket() as probe:      # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = metrics.start(lab.store, f"127.0.0.1:{port}")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                    timeout=10) as reply:
            text = reply.read().decode()
        assert value(samples(text), "drover_hosts", state="up") == 2
    finally:
        server.shutdown()


@pytest.mark.parametrize("bad", ["9180", "host:", ":9180", "h:99999",
                                 "h:port"])
def test_a_bad_listen_address_is_one_clear_line(bad):
    with pytest.raises(InvalidInput, match="metrics_listen"):
        metrics.parse_listen(bad)
