"""``lab up`` registers the lab fence agent for every host through
host.set_fence, and goes on without it on a controller that lacks it."""
import os
import sys

import pytest

from agent.common.errors import NotFound
from agent.lab import fleet


class Lab:
    lab_dir = "/var/lib/lab"


class Client:
    def __init__(self, error=None):
        self.error = error
        self.calls = []

    def call(self, method, **params):
        self.calls.append((method, params))
        if self.error:
            raise self.error


HOSTS = [{"name": "lab-h1"}, {"name": "lab-h2"}]


def test_every_host_gets_the_lab_fence_agent():
    client = Client()
    fleet.register_fencing(client, Lab(), HOSTS, progress=print)
    agent = os.path.join(os.path.dirname(sys.executable), "fence_drover_lab")
    assert client.calls == [
        ("host.set_fence", {"name": h, "agent": agent,
                            "options": {"plug": h,
                                        "lab_dir": "/var/lib/lab"}})
        for h in ("lab-h1", "lab-h2")]


def test_a_controller_without_set_fence_is_skipped_with_a_line():
    client = Client(NotFound("no such RPC method: host.set_fence"))
    said = []
    fleet.register_fencing(client, Lab(), HOSTS, progress=said.append)
    assert len(client.calls) == 1
    assert said == ["controller has no host.set_fence: lab hosts "
                    "registered without a fence agent"]


def test_other_refusals_are_not_hidden():
    client = Client(NotFound("no host lab-h1"))
    with pytest.raises(NotFound, match="no host lab-h1"):
        fleet.register_fencing(client, Lab(), HOSTS, progress=print)
