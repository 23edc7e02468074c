"""The controller's LeaseBook: renewals and their ack time, the HA list,
the verdict from the peers' views, the reconcile of a self-fenced host."""
import pytest

from agent.conf import CONF
from agent.controller import states
from agent.controller.leases import LeaseBook
from agent.sim.selffence import SimStore
from agent.transport.errors import HostUnreachable


class Clock:
    now = 50.0

    def __call__(self):
        return self.now


@pytest.fixture
def book():
    store = SimStore()
    for i, name in enumerate(("h1", "h2", "h3")):
        store.hosts[name] = {"name": name, "address": f"198.18.0.{11 + i}",
                             "state": "up", "forced_down": False,
                             "fence_agent": None}
    store.instances = {
        "vm1": {"uuid": "vm1", "host": "h1", "ha": True, "task_state": None,
                "vm_state": states.ACTIVE},
        "vm2": {"uuid": "vm2", "host": "h1", "ha": False, "task_state": None,
                "vm_state": states.ACTIVE}}
    calls, replies, down, started = [], {}, set(), []

    def call(host, method, timeout=None, **params):
        calls.append((host, method, params))
        if host in down:
            raise HostUnreachable(f"{host}: no route")
        if method == "host.lease_renew":
            return replies.get(host, {"fenced": False})
        if method == "host.facts":
            return {"domains": []}
        if method == "host.peer_view":
            return replies.get((host, "view"), {})
        return {}
    clock = Clock()
    b = LeaseBook(store, call, clock=clock, workers=1,
                  submit=lambda op, uuid: started.append((op, uuid)),
                  is_ha=lambda store, i: i.get("ha", False))
    b.t = dict(store=store, calls=calls, replies=replies, down=down,
               clock=clock, started=started)
    return b


def test_each_host_is_renewed_with_its_peers_and_ha_list(book):
    book.renew_all()
    renewals = {h: p for h, m, p in book.t["calls"]
                if m == "host.lease_renew"}
    assert sorted(renewals) == ["h1", "h2", "h3"]
    assert renewals["h1"]["ha_instances"] == ["vm1"]
    assert [p["name"] for p in renewals["h1"]["peers"]] == ["h2", "h3"]
    assert renewals["h1"]["lease_time"] == CONF.ha.lease_time


def test_a_host_with_a_fence_agent_gets_no_ha_list(book):
    book.t["store"].hosts["h1"]["fence_agent"] = "fence_ipmilan"
    book.renew_all()
    assert [p["ha_instances"] for h, m, p in book.t["calls"]
            if h == "h1" and m == "host.lease_renew"] == [[]]


def test_the_grant_is_the_time_of_the_ack_and_a_miss_keeps_it(book):
    book.t["clock"].now = 60.0
    book.renew_all()
    assert book.last_granted("h1") == 60.0
    book.t["down"].add("h1")
    book.t["clock"].now = 70.0
    book.renew_all()
    assert book.last_granted("h1") == 60.0
    assert book.status("h1")["lease_last_renewal_s"] == 10.0


def test_never_granted_counts_from_the_book_start(book):
    assert book.last_granted("h1") == 50.0


def test_verdict_from_the_other_hosts_views(book):
    book.renew_all()
    book.t["clock"].now += 100
    for peer in ("h2", "h3"):
        book.t["replies"][(peer, "view")] = {"h1": 60.0}
    assert book.verdict("h1").state == "fenced"
    book.t["replies"][("h2", "view")] = {"h1": 0.5}
    book.t["replies"][("h3", "view")] = {"h1": 0.5}
    assert book.verdict("h1").state == "alive"


def test_verdict_unknown_when_peers_do_not_answer(book):
    book.t["clock"].now += 100
    book.t["down"].update({"h2", "h3"})
    v = book.verdict("h1")
    assert v.state == "unknown" and "0 of 2" in v.reason


def test_a_fenced_reply_is_reconciled_cleared_and_its_guest_restarted(book):
    book.t["replies"]["h1"] = {"fenced": True, "destroyed": ["vm1"],
                               "reason": "isolated"}
    book.renew_all()
    methods = [m for h, m, p in book.t["calls"] if h == "h1"]
    assert methods.index("host.facts") < methods.index("host.lease_clear")
    assert book.t["started"] == [("start", "vm1")]
    assert book.t["store"].instances["vm1"]["vm_state"] == states.STOPPED


def test_an_evacuated_guest_is_not_restarted_on_the_old_host(book):
    book.t["store"].instances["vm1"]["host"] = "h2"
    book.t["replies"]["h1"] = {"fenced": True, "destroyed": ["vm1"]}
    book.renew_all()
    assert book.t["started"] == []


def test_no_reconcile_while_a_recovery_of_the_host_runs(book):
    book.t["store"].tasks = [{"kind": "recover_host",
                              "params": {"host": "h1"}}]
    book.t["replies"]["h1"] = {"fenced": True, "destroyed": ["vm1"]}
    book.renew_all()
    assert "host.lease_clear" not in [m for h, m, p in book.t["calls"]]
    assert book.t["started"] == []


def test_no_clear_while_an_evacuation_from_it_is_in_flight(book):
    book.t["store"].migrations = [{
        "uuid": "m1", "type": "evacuation", "instance_uuid": "vm1",
        "source_host": "h1", "dest_host": "h2",
        "status": states.MIG_RUNNING}]
    book.t["replies"]["h1"] = {"fenced": True, "destroyed": ["vm1"]}
    book.renew_all()
    assert "host.lease_clear" not in [m for h, m, p in book.t["calls"]]


def test_the_api_gives_the_verdict_and_says_when_ha_is_off(book):
    import types
    from agent.controller.api.hosts import host_lease_verdict
    book.t["clock"].now += 100
    book.t["down"].update({"h2", "h3"})
    svc = types.SimpleNamespace(store=book.t["store"], leases=book)
    shown = host_lease_verdict(svc, "h1")
    assert shown["state"] == "unknown" and "0 of 2" in shown["reason"]
    svc.leases = None
    assert "enabled is false" in host_lease_verdict(svc, "h1")["reason"]


def test_acknowledged_ha_is_what_the_host_last_said_it_holds(book):
    assert book.acknowledged_ha("h1") == []
    book.t["replies"]["h1"] = {"fenced": False, "ha_instances": ["vm1"]}
    book.renew_all()
    assert book.acknowledged_ha("h1") == ["vm1"]
