"""The state store: hosts, aggregates and zones, flavors, images,
instances, migrations, actions and the task log."""
import pytest

from agent.common.errors import Conflict, DroverError, InvalidInput, NotFound
from agent.conf import CONF
from agent.controller import states
from agent.controller.db import Store

FACTS = {"vcpus": 4, "memory_mb": 8192, "disk_gb": 100,
         "libvirt_version": "9.0.0", "bogus": "ignored"}


@pytest.fixture
def store(store_url):
    st = Store(store_url)
    yield st
    st.close()


@pytest.fixture
def catalog(store):
    store.create_flavor("small", 1, 512, 1, {"ssd": "true"})
    store.create_image("cirros", "/images/cirros.qcow2", "qcow2", 1 << 30,
                       1 << 24, checksum="abc")
    return store


@pytest.fixture
def small_range():
    CONF.set_override("guest_address_range", "198.18.0.10-198.18.0.12",
                      group="controller")
    yield
    CONF.clear_override("guest_address_range", group="controller")


# hosts

def test_upsert_host_from_facts_marks_it_up(store):
    h = store.upsert_host("h1", "198.18.0.2")
    assert (h["state"], h["vcpus"], h["enabled"]) == ("down", 0, True)
    h = store.upsert_host("h1", facts=FACTS)
    assert (h["state"], h["vcpus"], h["libvirt_version"]) == \
        ("up", 4, "9.0.0")
    assert h["address"] == "198.18.0.2" and h["last_seen"].endswith("Z")
    assert store.mark_host_down("h1")["state"] == "down"
    h = store.disable_host("h1", "maintenance")
    assert (h["enabled"], h["disabled_reason"]) == (False, "maintenance")
    assert store.enable_host("h1")["disabled_reason"] is None


def test_new_host_needs_an_address_and_a_good_name(store):
    with pytest.raises(InvalidInput, match="address"):
        store.upsert_host("h1")
    with pytest.raises(InvalidInput, match="invalid host name"):
        store.upsert_host("h1;reboot", "198.18.0.2")
    with pytest.raises(NotFound, match="host nope not found"):
        store.get_host("nope")


def test_host_with_allocations_cannot_be_deleted(store):
    store.upsert_host("h1", "198.18.0.2", facts=FACTS)
    store.claim("h1", "c1", 1, 512, 1)
    with pytest.raises(Conflict, match="1 allocations"):
        store.delete_host("h1")
    store.release("c1")
    store.delete_host("h1")
    assert store.list_hosts() == []


# aggregates and availability zones

def _hosts(store, *names):
    for n in names:
        store.upsert_host(n, "198.18.0.2", facts=FACTS)


def test_aggregate_show_has_hosts_and_metadata(store):
    _hosts(store, "h1", "h2")
    store.create_aggregate("fast", "az1")
    store.add_aggregate_host("fast", "h2")
    store.add_aggregate_host("fast", "h1")
    agg = store.set_aggregate_metadata("fast", {"ssd": "true"})
    assert agg["hosts"] == ["h1", "h2"]
    assert agg["metadata"] == {"availability_zone": "az1", "ssd": "true"}
    assert agg["availability_zone"] == "az1"
    agg = store.unset_aggregate_metadata("fast", ["ssd"])
    assert agg["metadata"] == {"availability_zone": "az1"}
    assert [a["name"] for a in store.list_aggregates()] == ["fast"]
    with pytest.raises(Conflict, match="already in aggregate fast"):
        store.add_aggregate_host("fast", "h1")
    with pytest.raises(Conflict, match="already exists"):
        store.create_aggregate("fast")


def test_hosts_in_no_zone_are_in_the_default_zone(store):
    _hosts(store, "h1", "h2")
    store.create_aggregate("a1", "az1")
    store.add_aggregate_host("a1", "h1")
    assert store.host_availability_zone("h1") == "az1"
    assert store.host_availability_zone("h2") == "nova"
    zones = {h.name: h.availability_zone for h in store.host_states()}
    assert zones == {"h1": "az1", "h2": "nova"}


def test_a_host_is_in_one_zone_only(store):
    _hosts(store, "h1")
    store.create_aggregate("a1", "az1")
    store.create_aggregate("a2", "az2")
    store.create_aggregate("same", "az1")
    store.create_aggregate("plain")
    store.add_aggregate_host("a1", "h1")
    with pytest.raises(Conflict, match="host h1 is in availability zone az1 "
                                       r"\(aggregate a1\); aggregate a2 is "
                                       "in az2"):
        store.add_aggregate_host("a2", "h1")
    store.add_aggregate_host("same", "h1")
    store.add_aggregate_host("plain", "h1")
    with pytest.raises(Conflict, match="cannot also be in az3"):
        store.set_aggregate_metadata("plain", {"availability_zone": "az3"})
    store.set_aggregate_metadata("plain", {"availability_zone": "az1"})
    assert store.get_aggregate("a2")["hosts"] == []


def test_zone_names_are_validated(store):
    with pytest.raises(InvalidInput, match="availability zone"):
        store.create_aggregate("a1", "az 1")
    store.create_aggregate("a1")
    with pytest.raises(InvalidInput, match="availability zone"):
        store.set_aggregate_metadata("a1", {"availability_zone": "../x"})


def test_zone_of_a_host_with_instances_cannot_change(catalog):
    store = catalog
    _hosts(store, "h1")
    inst = store.create_instance("vm1", "small", "cirros")
    store.update_instance(inst["uuid"], host="h1")
    store.create_aggregate("a1", "az1")
    with pytest.raises(Conflict, match="host h1 has 1 instances: its "
                                       "availability zone cannot change "
                                       "from nova to az1"):
        store.add_aggregate_host("a1", "h1")
    store.create_aggregate("plain")
    store.add_aggregate_host("plain", "h1")
    with pytest.raises(Conflict, match="cannot change"):
        store.set_aggregate_metadata("plain", {"availability_zone": "az2"})
    store.mark_instance_deleted(inst["uuid"])
    store.set_aggregate_metadata("plain", {"availability_zone": "az2"})
    assert store.host_availability_zone("h1") == "az2"


def test_aggregate_with_hosts_cannot_be_deleted(store):
    _hosts(store, "h1")
    store.create_aggregate("a1")
    store.add_aggregate_host("a1", "h1")
    with pytest.raises(Conflict, match="still has hosts: h1"):
        store.delete_aggregate("a1")
    store.remove_aggregate_host("a1", "h1")
    store.delete_aggregate("a1")
    with pytest.raises(NotFound):
        store.get_aggregate("a1")


def test_host_states_merge_aggregate_metadata_and_allocations(store):
    _hosts(store, "h1", "h2")
    store.create_aggregate("a1")
    store.create_aggregate("a2")
    store.set_aggregate_metadata("a1", {"gpu": "k80"})
    store.set_aggregate_metadata("a2", {"gpu": "v100", "ssd": "true"})
    for agg in ("a1", "a2"):
        store.add_aggregate_host(agg, "h1")
    store.claim("h1", "c1", 2, 1024, 10)
    store.claim("h1", "c2", 1, 512, 5)
    by_name = {h.name: h for h in store.host_states()}
    h1 = by_name["h1"]
    assert h1.metadata == {"gpu": {"k80", "v100"}, "ssd": {"true"}}
    assert h1.aggregates == ("a1", "a2")
    assert (h1.vcpus_alloc, h1.ram_mb_alloc, h1.disk_gb_alloc) == \
        (3, 1536, 15)
    assert by_name["h2"].ram_mb_alloc == 0 and by_name["h2"].up


# flavors and images

def test_flavors(store):
    f = store.create_flavor("m1", 2, 2048, 20, {"ssd": "true"})
    assert store.get_flavor(str(f["id"]))["name"] == "m1"
    f = store.set_flavor_properties("m1", {"hw:cpu_policy": "dedicated"})
    assert f["properties"] == {"ssd": "true", "hw:cpu_policy": "dedicated"}
    assert store.unset_flavor_properties("m1", ["ssd"])["properties"] == \
        {"hw:cpu_policy": "dedicated"}
    with pytest.raises(Conflict):
        store.create_flavor("m1", 1, 1, 1)
    with pytest.raises(InvalidInput, match="invalid ram_mb"):
        store.create_flavor("m2", 1, 0, 1)
    store.delete_flavor("m1")
    assert store.list_flavors() == []


def test_images_in_use_are_kept(catalog):
    img = catalog.get_image("cirros")
    assert catalog.get_image(img["uuid"])["path"] == "/images/cirros.qcow2"
    inst = catalog.create_instance("vm1", "small", "cirros")
    with pytest.raises(Conflict, match="used by 1 instances"):
        catalog.delete_image("cirros")
    catalog.mark_instance_deleted(inst["uuid"])
    catalog.delete_image("cirros")
    assert catalog.list_images() == []


# instances

def test_create_instance_snapshots_flavor_and_allocates_addresses(catalog):
    inst = catalog.create_instance("vm1", "small", "cirros",
                                   availability_zone="az1")
    assert inst["status"] == "BUILD"
    assert inst["task_state"] == states.SCHEDULING
    assert inst["flavor"]["ram_mb"] == 512
    assert inst["flavor"]["properties"] == {"ssd": "true"}
    assert inst["ip"] == "198.18.0.100"
    assert inst["mac"].startswith("52:54:00:")
    assert inst["requested_availability_zone"] == "az1"
    catalog.delete_flavor("small")
    assert catalog.get_instance("vm1")["flavor"]["name"] == "small"


def test_addresses_are_unique_and_reused_after_delete(catalog, small_range):
    made = [catalog.create_instance(f"vm{i}", "small", "cirros")
            for i in range(3)]
    assert [i["ip"] for i in made] == ["198.18.0.10", "198.18.0.11",
                                       "198.18.0.12"]
    assert len({i["mac"] for i in made}) == 3
    with pytest.raises(DroverError, match="no free guest address"):
        catalog.create_instance("vm3", "small", "cirros")
    catalog.mark_instance_deleted(made[1]["uuid"])
    again = catalog.create_instance("vm3", "small", "cirros")
    assert again["ip"] == "198.18.0.11"


def test_addresses_stay_unique_under_concurrent_creates(catalog,
                                                        small_range):
    import threading
    out, errors = [], []

    def make(i):
        try:
            out.append(catalog.create_instance(f"vm{i}", "small", "cirros"))
        except DroverError as err:
            errors.append(err)

    threads = [threading.Thread(target=make, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 3 and len(errors) == 3
    assert len({i["ip"] for i in out}) == 3


def test_names_are_unique_among_live_instances(catalog):
    first = catalog.create_instance("vm1", "small", "cirros")
    with pytest.raises(Conflict, match="instance vm1 already exists"):
        catalog.create_instance("vm1", "small", "cirros")
    catalog.mark_instance_deleted(first["uuid"])
    second = catalog.create_instance("vm1", "small", "cirros")
    assert catalog.get_instance("vm1")["uuid"] == second["uuid"]
    gone = catalog.get_instance(first["uuid"], deleted=True)
    assert gone["status"] == "DELETED" and gone["ip"] is None
    with pytest.raises(NotFound):
        catalog.get_instance(first["uuid"])
    assert [i["uuid"] for i in catalog.list_instances()] == [second["uuid"]]
    assert len(catalog.list_instances(deleted=True)) == 2


def test_bad_instance_input(catalog):
    with pytest.raises(InvalidInput, match="invalid instance name"):
        catalog.create_instance("vm 1", "small", "cirros")
    with pytest.raises(NotFound, match="flavor huge"):
        catalog.create_instance("vm1", "huge", "cirros")
    with pytest.raises(InvalidInput, match="storage"):
        catalog.create_instance("vm1", "small", "cirros", storage="nfs")


def test_update_instance_compares_and_sets(catalog):
    inst = catalog.create_instance("vm1", "small", "cirros")
    up = catalog.update_instance(inst["uuid"], expected={
        "task_state": states.SCHEDULING}, host="h1", vm_state=states.ACTIVE,
        task_state=None)
    assert up["status"] == "ACTIVE" and up["host"] == "h1"
    with pytest.raises(Conflict, match="task_state is None, expected "
                                       "migrating"):
        catalog.update_instance(inst["uuid"], expected={
            "task_state": states.MIGRATING}, host="h2")
    assert catalog.get_instance("vm1")["host"] == "h1"
    catalog.update_instance(inst["uuid"], expected={
        "vm_state": (states.STOPPED, states.ACTIVE)}, power_state=1)
    with pytest.raises(ValueError):
        catalog.update_instance(inst["uuid"], name="x")


def test_admit_task_checks_state_and_takes_ownership(catalog):
    from agent.controller.ops import OPERATIONS
    live, migrate = OPERATIONS["live-migrate"], OPERATIONS["migrate"]
    inst = catalog.create_instance("vm1", "small", "cirros")
    catalog.update_instance(inst["uuid"], vm_state=states.ACTIVE,
                            task_state=None)
    building = catalog.create_instance("vm2", "small", "cirros")
    with pytest.raises(Conflict, match="Cannot 'migrate' instance vm2 while "
                                       "it is in vm_state building"):
        catalog.admit_task("cold_migrate", {}, building["uuid"],
                           rule=migrate.rule, operation="migrate")
    assert catalog.list_tasks() == []       # nothing recorded
    got, tid = catalog.admit_task("live_migrate", {"uuid": inst["uuid"]},
                                  inst["uuid"], rule=live.rule,
                                  action="live-migrate",
                                  operation="live-migrate")
    assert got["task_state"] == states.MIGRATING
    assert got["status"] == "MIGRATING" and got["task_id"] == tid
    assert catalog.task_get(tid)["params"]["action_id"]
    with pytest.raises(Conflict, match="busy"):
        catalog.admit_task("cold_migrate", {}, inst["uuid"],
                           rule=migrate.rule, operation="migrate")


def test_only_the_owning_task_may_change_its_instance(catalog):
    from agent.common.errors import NotOwner
    inst = catalog.create_instance("vm1", "small", "cirros")
    _, first = catalog.admit_task("boot", {}, inst["uuid"])
    catalog.update_instance(inst["uuid"], owner=first, host="h1")
    _, second = catalog.admit_task("evacuate", {}, inst["uuid"],
                                   supersede=True)
    assert catalog.task_get(first)["superseded_by"] == second
    with pytest.raises(NotOwner):       # the stale task writes nothing
        catalog.update_instance(inst["uuid"], owner=first, host="h9")
    catalog.update_instance(inst["uuid"], owner=second, host="h2")
    assert catalog.get_instance("vm1")["host"] == "h2"
    catalog.task_finish(first, "superseded")
    assert catalog.get_instance("vm1")["task_id"] == second


def test_an_ended_task_never_leaves_its_instance_busy(catalog):
    inst = catalog.create_instance("vm1", "small", "cirros")
    _, tid = catalog.admit_task("boot", {}, inst["uuid"])
    catalog.task_finish(tid, "failed", "TimeoutError")
    after = catalog.get_instance("vm1")
    assert after["task_id"] is None and after["task_state"] is None
    catalog.admit_task("boot", {}, inst["uuid"])        # free again


# migrations, actions

def test_migrations(store):
    m = store.create_migration("u-1", "resize", "h1", "h2",
                               old_flavor={"name": "a"},
                               new_flavor={"name": "b"})
    assert m["status"] == states.MIG_PRE_MIGRATING and len(m["uuid"]) == 36
    store.update_migration(m["id"], status=states.MIG_FINISHED,
                           progress={"percent": 100})
    with pytest.raises(Conflict, match="is finished, not migrating"):
        store.update_migration(m["uuid"], expected_status="migrating",
                               status=states.MIG_ERROR)
    store.update_migration(m["uuid"], expected_status=(
        states.MIG_FINISHED,), status=states.MIG_CONFIRMED)
    assert store.get_migration(m["id"])["progress"] == {"percent": 100}
    store.create_migration("u-2", "live-migration", "h2", "h3")
    assert [x["instance_uuid"] for x in store.list_migrations(host="h2")] \
        == ["u-2", "u-1"]
    assert [x["instance_uuid"] for x in
            store.list_migrations(in_progress=True)] == ["u-2"]
    with pytest.raises(InvalidInput):
        store.create_migration("u-3", "teleport", "h1")
    with pytest.raises(ValueError):
        store.update_migration(m["id"], status="bogus")


def test_actions_and_events(store):
    act = store.start_action("u-1", "migrate", request_id="req-1")
    ev = store.start_event(act["id"], "compute_prep_resize")
    store.finish_event(ev["id"], "Error", "disk full")
    store.finish_action(act["id"], "failed")
    [got] = store.list_actions("u-1")
    assert got["action"] == "migrate" and got["finish_time"]
    assert got["events"][0]["result"] == "Error"
    assert got["events"][0]["details"] == "disk full"
    assert store.list_actions("u-2") == []


# the task log

def test_task_log_records_steps(store):
    tid = store.task_create("migrate", {"instance": "vm1"}, "u-1")
    store.step_begin(tid, 0, "claim")
    store.step_done(tid, "claim", {"host": "h2"})
    store.step_begin(tid, 1, "copy")
    store.task_progress(tid, "copying disk: 40%")
    assert store.tasks_unfinished() == [tid]
    store.step_failed(tid, "copy", "no space")
    store.task_finish(tid, "undoing", "no space")
    store.step_undone(tid, "copy")
    store.step_undone(tid, "claim")
    store.task_finish(tid, "failed", "no space")
    task = store.task_get(tid)
    assert (task["state"], task["error"], task["progress"]) == \
        ("failed", "no space", "copying disk: 40%")
    steps = store.steps_get(tid)
    assert [(s["index"], s["name"], s["state"]) for s in steps] == \
        [(0, "claim", "undone"), (1, "copy", "undone")]
    assert steps[0]["data"] == {"host": "h2"}
    assert store.tasks_unfinished() == []


def test_a_step_begins_only_if_the_task_may_go_on(catalog):
    inst = catalog.create_instance("vm1", "small", "cirros")
    _, first = catalog.admit_task("boot", {}, inst["uuid"], action="create")
    action_id = catalog.task_get(first)["params"]["action_id"]
    out = catalog.step_begin(first, 0, "claim", action_id=action_id,
                             event="boot_claim")
    assert out["interrupt"] is None and out["event_id"]
    catalog.step_done(first, "claim", {}, event=(out["event_id"], "Success",
                                                 None))
    [ev] = catalog.list_actions(inst["uuid"])[0]["events"]
    assert (ev["event"], ev["result"]) == ("boot_claim", "Success")
    assert ev["finish_time"] is not None
    catalog.task_request_cancel(first)
    # A cancel is not seen past the commit point; a supersede always is.
    assert catalog.step_begin(first, 1, "copy")["interrupt"] == "cancelled"
    assert catalog.step_begin(first, 1, "copy", cancellable=False)[
        "interrupt"] is None
    catalog.admit_task("evacuate", {}, inst["uuid"], supersede=True)
    # The step before is recorded done all the same, in the same write.
    assert catalog.step_begin(first, 2, "boot", cancellable=False,
                              done=("copy", {"copied": 1}))[
        "interrupt"] == "superseded"
    assert [(s["name"], s["state"], s["data"])
            for s in catalog.steps_get(first)] == [
        ("claim", "done", {}), ("copy", "done", {"copied": 1})]
    catalog.task_finish(first, "superseded", action_id=action_id)
    assert catalog.list_actions(inst["uuid"])[0]["finish_time"] is not None


def test_task_engine_runs_on_the_store(store):
    from agent.controller.tasks.engine import TaskEngine
    from agent.controller.tasks.workflow import Step, Workflow
    calls = []

    def boom(ctx):
        raise RuntimeError("b broke")

    wf = Workflow("demo", [
        Step("a", lambda ctx: {"x": 1}, lambda ctx: calls.append("undo a")),
        Step("b", boom, lambda ctx: calls.append("undo b"))])
    engine = TaskEngine(store, {"demo": lambda params: wf}, services=None,
                        max_workers=1)
    tid = engine.run_sync("demo", {"seed": 1})
    engine.shutdown()
    assert calls == ["undo b", "undo a"]
    assert store.task_get(tid)["state"] == "failed"
    assert [s["state"] for s in store.steps_get(tid)] == ["undone"] * 2
