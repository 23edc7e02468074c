"""Running fence agents: small fake agents written by the test (they read
their options on stdin and answer as fence-agents do), and Debian's real
fence-agents when installed, to prove the stdin protocol is theirs."""
import json
import os
import shutil
import sys
import xml.etree.ElementTree as ET

import pytest

from agent.common.errors import Conflict, DroverError, InvalidInput
from agent.conf import CONF
from agent.controller import fencing
from agent.controller.api import hosts as hosts_api
from agent.controller.daemon import Services
from agent.controller.db import Store, upgrade
from agent.controller.admission import Admission
from agent.controller.ops import WORKFLOWS
from agent.controller.tasks.actionlog import ActionTaskLog
from agent.controller.tasks.engine import TaskEngine

SECRET = "hunter2-s3cret"

# A fake fence agent: records its argv and stdin, then answers by its
# MODE: "good" (off, then Status: OFF), "third" (Status: ON twice, then
# OFF), "fails" (off fails, printing the password as careless agents do),
# "hangs" (off never ends), "on" (status always ON).
FAKE = r'''#!{python}
import json, os, sys, time
mode, log = {mode!r}, {log!r}
text = sys.stdin.read()
opts = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
with open(log, "a") as f:
    f.write(json.dumps({{"argv": sys.argv, "stdin": text}}) + "\n")
action = opts.get("action")
if action == "off":
    if mode == "fails":
        print("Failed: Unable to connect/login to fencing device with "
              "password " + opts.get("password", ""), file=sys.stderr)
        sys.exit(1)
    if mode == "hangs":
        time.sleep(120)
    sys.exit(0)
if action == "status":
    with open(log) as f:
        n = sum('action=status' in line for line in f)
    if mode == "on" or (mode == "third" and n < 3):
        print("Status: ON"); sys.exit(0)
    print("Status: OFF"); sys.exit(2)
sys.exit(1)
'''


def fake_agent(tmp_path, mode):
    log = tmp_path / f"{mode}.log"
    path = tmp_path / f"fence_fake_{mode}"
    path.write_text(FAKE.format(python=sys.executable, mode=mode,
                                log=str(log)))
    path.chmod(0o755)
    return str(path), log


def calls(log):
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture
def svc(tmp_path):
    url = f"sqlite:///{tmp_path}/drover.db"
    upgrade(url)
    store = Store(url)
    for name in ("h1", "h2"):
        store.upsert_host(name, address=f"198.18.0.1{name[1]}",
                          facts={"vcpus": 8})
    s = Services(store=store, hosts=None)
    s.engine = TaskEngine(ActionTaskLog(store), WORKFLOWS, s)
    s.admission = Admission(s)
    yield s
    s.engine.shutdown()
    store.close()


@pytest.fixture
def short_fence():
    CONF.set_override("timeout", 1, group="fencing")
    CONF.set_override("status_interval", 0.1, group="fencing")
    yield
    CONF.clear_override("timeout", group="fencing")
    CONF.clear_override("status_interval", group="fencing")


def _set(svc, agent, **options):
    return hosts_api.host_set_fence(
        svc, "h1", agent, {"plug": "h1", "password": SECRET, **options})


# -- the protocol, through fake agents ----------------------------------------

def test_fence_runs_off_then_status_and_marks_the_host_fenced(svc, tmp_path):
    agent, log = fake_agent(tmp_path, "good")
    _set(svc, agent)
    seen = []
    result = fencing.fence(svc.store, "h1", seen.append, interval=0.1)
    host = svc.store.get_host("h1")
    assert host["state"] == "fenced" and host["fenced_at"]
    assert result["status_checks"] == 1
    runs = calls(log)
    assert [r["argv"] for r in runs] == [[agent], [agent]]   # no arguments
    assert runs[0]["stdin"] == (f"password={SECRET}\nplug=h1\n"
                                "action=off\n")
    assert runs[1]["stdin"].endswith("action=status\n")
    assert seen and not any(SECRET in m for m in seen)
    # Twice is harmless: off again, still fenced.
    fencing.fence(svc.store, "h1", interval=0.1)
    assert svc.store.get_host("h1")["state"] == "fenced"


def test_status_is_asked_until_it_says_off(svc, tmp_path):
    agent, log = fake_agent(tmp_path, "third")
    _set(svc, agent)
    result = fencing.fence(svc.store, "h1", interval=0.1, timeout=30)
    assert result["status_checks"] == 3
    assert [r["stdin"].splitlines()[-1] for r in calls(log)] == [
        "action=off", "action=status", "action=status", "action=status"]
    assert svc.store.get_host("h1")["state"] == "fenced"


def test_a_failing_agent_leaves_the_host_not_fenced_with_the_reason(
        svc, tmp_path, caplog):
    agent, _ = fake_agent(tmp_path, "fails")
    _set(svc, agent)
    svc.store.mark_host_down("h1")
    with pytest.raises(DroverError) as err:
        fencing.fence(svc.store, "h1", interval=0.1)
    message = str(err.value)
    assert "action=off failed (exit 1)" in message
    assert "Unable to connect" in message and SECRET not in message
    host = svc.store.get_host("h1")
    assert host["state"] == "down" and host["fenced_at"] is None
    assert ok_to_evacuate(host) is False
    shown = hosts_api.host_show(svc, "h1")
    assert "fence failed" in shown["reason"] and SECRET not in shown["reason"]
    assert SECRET not in caplog.text


def ok_to_evacuate(host):
    return fencing.may_evacuate(host)[0]


def test_a_hanging_agent_is_killed_at_the_timeout(svc, tmp_path):
    agent, log = fake_agent(tmp_path, "hangs")
    _set(svc, agent)
    with pytest.raises(DroverError) as err:
        fencing.fence(svc.store, "h1", interval=0.1, timeout=1)
    assert "timed out" in str(err.value)
    assert svc.store.get_host("h1")["state"] == "up"
    assert len(calls(log)) == 1


def test_a_host_never_reported_off_is_not_fenced(svc, tmp_path):
    agent, _ = fake_agent(tmp_path, "on")
    _set(svc, agent)
    svc.store.mark_host_fenced("h1")        # an earlier fence said off
    with pytest.raises(DroverError) as err:
        fencing.fence(svc.store, "h1", interval=0.1, timeout=1)
    assert "not reported off within 1 s: status still ON" in str(err.value)
    host = svc.store.get_host("h1")
    assert host["state"] == "down" and host["fenced_at"] is None


def test_options_reach_the_agent_verbatim_never_a_shell(svc, tmp_path):
    agent, log = fake_agent(tmp_path, "good")
    marker = tmp_path / "pwned"
    hosts_api.host_set_fence(svc, "h1", agent,
                             {"plug": f"$(touch {marker}); `touch {marker}`"})
    fencing.fence(svc.store, "h1", interval=0.1)
    assert not marker.exists()
    assert f"plug=$(touch {marker})" in calls(log)[0]["stdin"]


# -- the task, the API --------------------------------------------------------

def test_host_fence_is_a_task_resumed_forward(svc, tmp_path, short_fence):
    agent, log = fake_agent(tmp_path, "good")
    _set(svc, agent)
    # A controller that died in the middle of the fence step.
    task_id = svc.store.task_create(fencing.KIND, {"host": "h1"}, None)
    svc.store.step_begin(task_id, 0, "fence")
    svc.engine.run(task_id)
    task = svc.store.task_get(task_id)
    assert task["state"] == "done"
    assert svc.store.get_host("h1")["state"] == "fenced"
    assert calls(log)[0]["stdin"].endswith("action=off\n")   # off again


def test_host_fence_api_refusals(svc, tmp_path, short_fence):
    with pytest.raises(InvalidInput) as err:
        hosts_api.host_fence(svc, "h1")
    assert "no fence agent" in str(err.value)
    with pytest.raises(InvalidInput):
        hosts_api.host_set_fence(svc, "h1", str(tmp_path / "missing"))
    with pytest.raises(InvalidInput):
        hosts_api.host_set_fence(svc, "h1", "fence_surely_not_installed")
    agent, _ = fake_agent(tmp_path, "hangs")
    _set(svc, agent)
    first = hosts_api.host_fence(svc, "h1")["task_id"]
    with pytest.raises(Conflict):
        hosts_api.host_fence(svc, "h1")              # one at a time
    with pytest.raises(Conflict):
        hosts_api.host_set_up(svc, "h1")             # not while it runs
    svc.engine.wait(first)


def test_host_fence_task_failure_names_the_reason(svc, tmp_path,
                                                  short_fence):
    agent, _ = fake_agent(tmp_path, "fails")
    _set(svc, agent)
    task_id = hosts_api.host_fence(svc, "h1")["task_id"]
    svc.engine.wait(task_id)
    task = svc.store.task_get(task_id)
    assert task["state"] == "failed"
    assert "Unable to connect" in task["error"] and SECRET not in \
        task["error"]
    assert SECRET not in json.dumps(svc.store.steps_get(task_id))


def test_secrets_are_never_shown(svc, tmp_path):
    agent, _ = fake_agent(tmp_path, "good")
    shown = _set(svc, agent, passwd_script="/root/pw", ip="198.18.0.2")
    assert shown["fence_options"] == {"plug": "h1", "password": "***",
                                      "passwd_script": "***",
                                      "ip": "198.18.0.2"}
    assert SECRET not in json.dumps(shown)
    assert SECRET not in json.dumps(hosts_api.host_list(svc))
    [row] = [r for r in hosts_api.host_list(svc) if r["Name"] == "h1"]
    assert row["Fence Agent"] == agent
    # The store keeps it for the agent.
    assert svc.store.get_host("h1")["fence_options"]["password"] == SECRET
    cleared = hosts_api.host_set_fence(svc, "h1", None, None)
    assert cleared["fence_agent"] is None and cleared["fence_options"] == {}


# -- Debian's fence-agents: the same protocol ---------------------------------

REAL = shutil.which("fence_virsh", path="/usr/sbin:/usr/bin:/sbin")
needs_real = pytest.mark.skipif(REAL is None,
                                reason="fence-agents is not installed")


def _metadata(agent):
    code, out = fencing.run_agent(agent, {}, "metadata", 30)
    assert code == 0, out
    end = "</resource-agent>"
    return ET.fromstring(out[out.index("<?xml"):out.index(end) + len(end)])


@needs_real
@pytest.mark.parametrize("name", ["fence_virsh", "fence_ipmilan",
                                  "fence_redfish"])
def test_real_agents_read_the_stdin_protocol(name):
    agent = fencing.resolve_agent(name)
    params = {p.get("name") for p in _metadata(agent).iter("parameter")}
    assert {"action", "plug"} <= params or {"action", "ip"} <= params
    # Every password-like option of theirs is one drover masks.
    secret = {p for p in params if "passw" in p}
    assert secret and all(fencing.is_secret(p) for p in secret)


@needs_real
def test_real_agent_validates_options_given_on_stdin():
    """validate-all checks the options without reaching any device."""
    agent = fencing.resolve_agent("fence_virsh")
    code, out = fencing.run_agent(agent, {"plug": "x"}, "validate-all", 30)
    assert code == 1
    assert fencing.reason_from(out, {}) == \
        "Failed: You have to set login name"
    code, out = fencing.run_agent(
        agent, {"ip": "198.18.0.1", "username": "root", "password": SECRET,
                "plug": "x"}, "validate-all", 30)
    assert code == 0, out
    assert SECRET not in out


def test_fence_agents_package_is_in_setup():
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    with open(os.path.join(root, ".ci", "setup")) as f:
        assert "fence-agents" in f.read()


@needs_real
def test_real_agent_is_not_run_through_a_shell(tmp_path):
    marker = tmp_path / "pwned"
    code, _ = fencing.run_agent(fencing.resolve_agent("fence_virsh"),
                                {"plug": f"$(touch {marker})"},
                                "validate-all", 30)
    assert code == 1 and not marker.exists()
