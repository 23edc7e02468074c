"""Host states over a real store and the real poller: a fenced host stays
fenced however well it answers, a host set down stays down for the
scheduler and host_status, ``host set --up`` is refused while
evacuations are unfinished and does not mark an unreachable host up."""
import types

import pytest

from agent.cli import host as host_cli
from agent.common.errors import Conflict, InvalidInput
from agent.controller import fencing, states
from agent.controller import hosts as hostsmod
from agent.controller.api import hosts as hosts_api
from agent.controller.db import Store, upgrade
from agent.transport.errors import HostUnreachable

FACTS = {"vcpus": 8, "memory_mb": 4096, "disk_gb": 40, "domains": []}


class Agents:
    def __init__(self):
        self.unreachable = set()

    def call(self, host, method, timeout=None, **params):
        if host in self.unreachable:
            raise HostUnreachable(f"cannot connect to {host}")
        return FACTS if method == "host.facts" else {}


@pytest.fixture
def svc(tmp_path, mocker):
    url = f"sqlite:///{tmp_path}/drover.db"
    upgrade(url)
    store = Store(url)
    store.upsert_host("h1", address="198.18.0.11", facts=FACTS)
    agents = Agents()
    manager = hostsmod.HostManager(store)
    mocker.patch.object(manager, "call", side_effect=agents.call)
    mocker.patch.object(manager, "_subscribe")
    yield types.SimpleNamespace(store=store, hosts=manager, agents=agents,
                                engine=None)
    store.close()


def _state(svc):
    return svc.store.get_host("h1")["state"]


def _scheduler_up(svc):
    return {h.name: h.up for h in svc.store.host_states()}["h1"]


def test_a_fenced_host_stays_fenced_until_it_returns_reconciled(svc):
    svc.store.mark_host_fenced("h1")
    svc.agents.unreachable.add("h1")
    svc.hosts.poll_host("h1")
    host = svc.store.get_host("h1")
    assert host["state"] == "fenced"
    assert fencing.may_evacuate(host)[0]
    svc.store.mark_host_down("h1")          # the poller's missed-too-long
    assert _state(svc) == "fenced"
    svc.store.mark_host_up("h1")            # only host_returned ends it
    assert _state(svc) == "fenced"
    svc.agents.unreachable.clear()
    svc.hosts.poll_host("h1")               # back: reconciled, then up
    host = svc.store.get_host("h1")
    assert (host["state"], host["fenced_at"], host["forced_down"]) == (
        "up", None, False)


def test_a_host_set_down_is_down_for_everyone_while_it_answers(svc):
    assert _scheduler_up(svc)
    shown = hosts_api.host_set_down(svc, "h1")
    assert shown["state"] == "down" and shown["forced_down"]
    assert shown["reason"] == "set down by the operator"
    svc.hosts.poll_host("h1")               # alive: the operator's word wins
    host = svc.store.get_host("h1")
    assert host["state"] == "down"
    assert not _scheduler_up(svc)
    assert states.host_status("h1", host) == "DOWN"
    assert fencing.may_evacuate(host)[0]


def test_set_up_returns_through_the_poller_not_by_itself(svc):
    hosts_api.host_set_down(svc, "h1")
    svc.store.mark_host_fenced("h1")
    svc.agents.unreachable.add("h1")
    shown = hosts_api.host_set_up(svc, "h1")
    assert (shown["state"], shown["forced_down"], shown["fenced_at"]) == (
        "down", False, None)
    svc.hosts.poll_host("h1")
    assert _state(svc) == "down"            # it cannot be reached
    assert not fencing.may_evacuate(svc.store.get_host("h1"))[0]
    svc.agents.unreachable.clear()
    svc.hosts.poll_host("h1")
    assert _state(svc) == "up"


@pytest.mark.parametrize("status, refused", [
    ("accepted", True), ("running", True), ("done", True),
    ("completed", False), ("failed", False)])
def test_set_up_is_refused_while_evacuations_are_unfinished(svc, status,
                                                            refused):
    hosts_api.host_set_down(svc, "h1")
    mig = svc.store.create_migration(
        "00000000-0000-0000-0000-000000000001", "evacuation", "h1", "h2",
        status=status)
    if refused:
        with pytest.raises(Conflict) as err:
            hosts_api.host_set_up(svc, "h1")
        assert f"migration {mig['id']}" in str(err.value)
        assert svc.store.get_host("h1")["forced_down"]
    else:
        assert not hosts_api.host_set_up(svc, "h1")["forced_down"]


# -- the CLI's own refusals ---------------------------------------------------

class Client:
    def __init__(self):
        self.calls = []

    def call(self, method, **params):
        self.calls.append((method, params))
        return {"name": params.get("name")}


def _args(**kw):
    base = dict(name="h1", down=False, up=False, fence_agent=None,
                no_fence=False, fence_option=[])
    return types.SimpleNamespace(**{**base, **kw})


def test_host_set_needs_something_to_set():
    with pytest.raises(InvalidInput):
        host_cli._set(Client(), _args())
    with pytest.raises(InvalidInput):
        host_cli._set(Client(), _args(fence_option=["ip=1"]))


def test_host_set_sends_the_fence_method_then_the_state():
    client = Client()
    host_cli._set(client, _args(fence_agent="fence_ipmilan", down=True,
                                fence_option=["ip=198.18.0.2",
                                              "password=a=b"]))
    assert client.calls == [
        ("host.set_fence", {"name": "h1", "agent": "fence_ipmilan",
                            "options": {"ip": "198.18.0.2",
                                        "password": "a=b"}}),
        ("host.set_down", {"name": "h1"})]


def test_a_bad_fence_option_is_refused_without_repeating_it():
    with pytest.raises(InvalidInput) as err:
        host_cli._set(Client(), _args(fence_agent="fence_x",
                                      fence_option=["hunter2"]))
    assert "hunter2" not in str(err.value)
