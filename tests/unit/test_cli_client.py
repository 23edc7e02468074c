"""The CLI's connection: a leader answers without an extra question; a
standby's refusal (NotLeader, nothing done) sends the call on to the
leader it names, once; an unreachable leader leaves the refusal."""
import argparse

import pytest

from agent.cli import client as cli_client
from agent.common.errors import NotLeader


class FakeController:
    def __init__(self, path, standby_of=None):
        self.path, self.standby_of = path, standby_of
        self.calls, self.closed = [], False

    def call(self, method, /, **params):
        self.calls.append(method)
        if method == "controller.leader":
            if self.standby_of is None:
                return {"role": "leader", "leader": None}
            return {"role": "standby",
                    "leader": {"address": self.standby_of}}
        if self.standby_of is not None:
            raise NotLeader(f"standby; the leader is at {self.standby_of}")
        return {"method": method, "params": params, "at": self.path}

    def close(self):
        self.closed = True


@pytest.fixture
def controllers(monkeypatch):
    made = {}

    def open_(path):
        if path == "/missing":
            from agent.common.errors import DroverError
            raise DroverError("cannot reach the controller")
        made[path] = FakeController(
            path, standby_of={"/standby": "/leader",
                              "/orphan": "/missing"}.get(path))
        return made[path]
    monkeypatch.setattr(cli_client, "_open", open_)
    return made


def _args(path):
    return argparse.Namespace(controller_socket=path)


def test_the_leader_is_asked_nothing_more(controllers):
    with cli_client.connect(_args("/leader")) as c:
        assert c.call("server.show", name="vm")["at"] == "/leader"
    assert controllers["/leader"].calls == ["server.show"]
    assert controllers["/leader"].closed


def test_a_standby_sends_the_call_on_to_the_leader(controllers):
    with cli_client.connect(_args("/standby")) as c:
        assert c.call("server.show", name="vm") == {
            "method": "server.show", "params": {"name": "vm"},
            "at": "/leader"}
        assert c.call("server.list")["at"] == "/leader"
        assert c.path == "/leader"
    assert controllers["/standby"].calls == ["server.show",
                                             "controller.leader"]
    assert controllers["/standby"].closed
    assert controllers["/leader"].calls == ["server.show", "server.list"]


def test_an_unreachable_leader_leaves_the_refusal(controllers):
    with pytest.raises(NotLeader), cli_client.connect(_args("/orphan")) as c:
        c.call("server.show", name="vm")
