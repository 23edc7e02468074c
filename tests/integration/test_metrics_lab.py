"""The controller's metrics endpoint on the lab: scraped before and after
real operations (a boot, a live migration, a delete), its values match
what happened."""
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from agent.lab import fleet as lab_fleet


def scrape(fleet):
    url = f"http://{lab_fleet.metrics_listen(fleet.lab)}/metrics"
    with urllib.request.urlopen(url, timeout=10) as reply:
        text = reply.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def value(got, name, **labels):
    return got.get((name, tuple(sorted(labels.items()))), 0)


def test_metrics_follow_a_boot_a_live_migration_and_a_delete(fleet):
    before = scrape(fleet)
    assert value(before, "drover_hosts", state="up") == len(fleet.hosts)
    fleet.create("metrics-vm")
    booted = scrape(fleet)
    assert value(booted, "drover_instances", status="ACTIVE") == \
        value(before, "drover_instances", status="ACTIVE") + 1
    fleet.json("server", "migrate", "metrics-vm", "--live-migration",
               "--wait")
    fleet.delete_servers(["metrics-vm"])
    after = scrape(fleet)

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)
    assert grew("drover_tasks_total", kind="boot", result="done") == 1
    assert grew("drover_tasks_total", kind="live_migrate",
                result="done") == 1
    assert grew("drover_tasks_total", kind="delete", result="done") == 1
    assert grew("drover_task_duration_seconds_count", kind="boot",
                result="done") == 1
    assert grew("drover_task_duration_seconds_sum", kind="boot",
                result="done") > 0
    assert grew("drover_migrations_total", type="live-migration",
                result="completed") == 1
    assert grew("drover_migration_duration_seconds_count",
                type="live-migration") == 1
    assert grew("drover_migration_downtime_seconds_count") == 1
    assert value(after, "drover_instances", status="ACTIVE") == \
        value(before, "drover_instances", status="ACTIVE")
    assert value(after, "drover_hosts", state="up") == len(fleet.hosts)
