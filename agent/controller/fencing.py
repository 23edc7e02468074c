"""Fencing: when drover may trust that a host is off, and how it makes
sure of it.

Argued from the two promises (a guest never runs on two hosts; no disk
holding the only copy of a guest's data is deleted):

- **Unreachable is not off.**  A host the poller cannot reach may be
  running its guests behind a cut link, a hung agent or a full disk.
  Starting them elsewhere then puts one guest on two hosts, both writing
  the same shared disk.  So "down" (unreachable longer than
  [controller] host_down_after) never allows an evacuation by itself.
- **A host is trusted off only on a word that means off:** its fence
  agent said so (``action=off`` succeeded and a later ``action=status``
  reported off), or the operator declared it (``host set --down``, Nova's
  forced_down: the operator takes the responsibility, as with Nova).
  ``may_evacuate`` is the one decision; the evacuation calls it and does
  not re-implement it.  An operator's mistake (a host set down that is in
  fact alive) is still caught by the disk leases (QEMU's image locks,
  virtlockd): the second start of a shared disk is refused, not run.
- **A fence that fails or times out proves nothing:** the host is left
  not fenced (one that was fenced before goes back to "down": the agent
  that cannot now say off is no longer evidence that it is), the reason
  is recorded (``fence_error``, shown by host show) and raised.  Nothing
  is evacuated on a failed fence.
- **Fenced is sticky.**  The poller never turns a fenced host back to up
  by itself: a host that answers again may be the host its guests were
  evacuated from, and it may still hold their domains.  It returns only
  through the reconcile (which destroys what now runs elsewhere, then
  calls ``store.host_returned``) or the operator's ``host set --up``,
  which is refused while evacuations from the host are unfinished (Nova
  bug 1922053) and does not mark it up either: the host goes back to
  "down" and the poller's normal return path (clean-ups first) decides.
- **Fencing twice is harmless:** power off is idempotent.  So the fence
  runs as a persistent task resumed forward after a controller restart:
  the agent is run again from ``action=off``, and the host is marked
  fenced only once a status call made after that ``off`` reported it off.
  A restart can delay a fence, never fake one.
- **Secrets stay secret.**  Options go to the agent on its stdin (the
  fence-agents protocol), never on its command line (visible to every
  user in ps); the agent runs from an argument list, never a shell.  The
  values of secret options are shown as "***" (host show, -f json), and
  the agent's output is scrubbed of them before it becomes an error, a
  log line or task progress.

The fence-agents protocol (ClusterLabs): the agent reads ``key=value``
lines on stdin, one of them ``action=...``; it exits 0 on success and 1
on error; for ``action=status`` it prints "Status: ON" (exit 0) or
"Status: OFF" (exit 2).
"""
import logging
import os
import re
import signal
import subprocess
import time

from agent.common.errors import DroverError, InvalidInput
from agent.conf import CONF
from agent.controller.tasks.workflow import Step, Workflow

LOG = logging.getLogger(__name__)

KIND = "fence"          # the task kind of ``drover host fence``

# Options whose values are never shown (fence-agents' names for
# passwords and the scripts that print them) ...
SECRET_KEYS = frozenset({
    "password", "passwd", "password_script", "passwd_script",
    "snmp_priv_passwd", "snmp_priv_passwd_script", "secret_key",
    "secret-key", "access_key", "access-key", "token", "api_key"})
# ... nor those of any option whose name says it is one.
_SECRET_WORDS = ("passw", "secret", "token", "credential", "private")
MASK = "***"

_AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_OPTION_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
OPTION_VALUE_MAX = 4096
_STATUS = re.compile(r"^\s*Status:\s*(ON|OFF)\b", re.I | re.M)
_FAILED = re.compile(r"(Failed:.*)$", re.M)
REASON_MAX = 300

ON, OFF = "on", "off"
# Evacuation records that no longer bind their source host: "completed"
# (the host was cleaned) and "failed" (the guest stayed that host's).
EVACUATION_SETTLED = frozenset({"completed", "failed"})


# -- decisions (pure) ---------------------------------------------------------

def may_evacuate(host):
    """(True, why) when the instances of ``host`` (a store record) may be
    started elsewhere: it is fenced, or the operator declared it down and
    it is not seen up; else (False, the one line that says why not)."""
    name = host["name"]
    if host["state"] == "fenced":
        return True, (f"host {name} is fenced (its fence agent reported it "
                      f"off at {host.get('fenced_at')})")
    if host.get("forced_down") and host["state"] != "up":
        return True, f"host {name} was set down by the operator"
    if host["state"] == "up":
        return False, (f"host {name} is up: only a fenced host or one set "
                       f"down may be evacuated (drover host fence {name})")
    return False, (f"host {name} is {host['state']} but not fenced: "
                   "unreachable is not proof that it is off; run drover "
                   f"host fence {name}, or drover host set --down {name} "
                   "if you know it is off")


def state_when_seen(host):
    """The state of ``host`` (a record) once its agent answered: "fenced"
    stays fenced and a host set down stays "down" (only host_returned or
    host set --up end those); any other becomes "up"."""
    if host["state"] == "fenced":
        return "fenced"
    if host.get("forced_down"):
        return "down"
    return "up"


def state_when_missed(host):
    """The state of ``host`` once it has been unreachable longer than
    host_down_after: an up host goes down, a fenced one stays fenced."""
    return "fenced" if host["state"] == "fenced" else "down"


def unsettled_evacuations(migrations, host):
    """The evacuation records (of ``migrations``) from ``host`` that still
    bind it: not completed (its leftovers not yet cleaned) nor failed."""
    return [m for m in migrations
            if m["type"] == "evacuation" and m["source_host"] == host
            and m["status"] not in EVACUATION_SETTLED]


def clear_refusal(host, migrations):
    """Why ``host set --up`` must be refused (None: it may be cleared)."""
    busy = unsettled_evacuations(migrations, host["name"])
    if busy:
        ids = ", ".join(str(m["id"]) for m in busy[:5])
        return (f"host {host['name']} has {len(busy)} unfinished "
                f"evacuation(s) (migration {ids}): it stays down until "
                "they are completed or failed")
    return None


def is_secret(key):
    key = key.lower()
    return key in SECRET_KEYS or any(w in key for w in _SECRET_WORDS)


def masked(options):
    """``options`` with every secret value shown as "***"."""
    return {k: MASK if is_secret(k) else v
            for k, v in (options or {}).items()}


def scrub(text, options):
    """``text`` with the value of every secret option in ``options``
    replaced by "***"."""
    for key, value in (options or {}).items():
        if is_secret(key) and value:
            text = text.replace(str(value), MASK)
    return text


def check_agent(agent):
    """A fence agent given by the operator: a program name (searched in
    [fencing] agent_dirs) or an absolute path; InvalidInput otherwise."""
    if not isinstance(agent, str) or not (
            _AGENT_NAME.fullmatch(agent) or (
                os.path.isabs(agent) and "\n" not in agent
                and "\0" not in agent and len(agent) <= 1024)):
        raise InvalidInput("invalid fence agent: give a program name such "
                           "as fence_ipmilan or an absolute path")
    return agent


def check_options(options):
    """Fence options as the store keeps them: a dict of ``key`` (letters,
    digits, ``_``, ``-``; not ``action``) to a one-line string value.
    Errors name the key, never the value (it may be a password)."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise InvalidInput("fence options must be key=value pairs")
    out = {}
    for key, value in options.items():
        if not isinstance(key, str) or not _OPTION_KEY.fullmatch(key):
            raise InvalidInput(f"invalid fence option name {str(key)[:40]!r}"
                               ": use letters, digits, '_' or '-'")
        if key == "action":
            raise InvalidInput("fence option 'action' is drover's to set "
                               "(off, then status)")
        if isinstance(value, bool):
            value = "1" if value else "0"
        if not isinstance(value, (str, int, float)):
            raise InvalidInput(f"fence option {key}: the value must be text")
        value = str(value)
        if "\n" in value or "\r" in value or "\0" in value or \
                len(value) > OPTION_VALUE_MAX:
            raise InvalidInput(f"fence option {key}: the value must be one "
                               f"line of at most {OPTION_VALUE_MAX} "
                               "characters")
        out[key] = value
    return out


def stdin_for(options, action):
    """What the agent reads on stdin: one ``key=value`` line per option,
    then ``action=ACTION``."""
    lines = [f"{k}={v}" for k, v in sorted(options.items())]
    lines.append(f"action={action}")
    return "\n".join(lines) + "\n"


def status_from(returncode, output):
    """What an ``action=status`` run says: ON, OFF, or None (it failed or
    said nothing clear).  Off is claimed only when nothing contradicts it:
    "Status: OFF" with exit 0 or 2, or exit 2 with no "Status: ON"."""
    said = {m.upper() for m in _STATUS.findall(output or "")}
    if returncode not in (0, 2) or len(said) > 1:
        return None
    if said == {"OFF"} or (returncode == 2 and not said):
        return OFF
    return ON if said == {"ON"} else None


def reason_from(output, options, returncode=None):
    """The one line that tells why an agent run failed, secrets
    scrubbed: its first "Failed: ..." message, else its last line."""
    text = scrub(output or "", options)
    failed = _FAILED.search(text)
    if failed:
        line = failed.group(1)
    else:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        line = lines[-1] if lines else ""
    if not line:
        line = f"exit {returncode}" if returncode is not None else "no output"
    return line[:REASON_MAX]


def shown_reason(host):
    """Why ``host`` (a record) is in its state, as host list and host
    show give it (None: nothing to say)."""
    parts = []
    if host["state"] == "fenced":
        text = f"fenced at {host.get('fenced_at')}"
        if host.get("last_seen") and host.get("fenced_at") and \
                host["last_seen"] > host["fenced_at"]:
            text += "; it answers again: fenced until reconciled"
        parts.append(text)
    if host.get("forced_down"):
        parts.append("set down by the operator")
    if host.get("fence_error"):
        parts.append(f"fence failed: {host['fence_error']}")
    if host.get("down_reason"):
        parts.append(host["down_reason"])
    if not host.get("enabled", True):
        parts.append("disabled" + (f": {host['disabled_reason']}"
                                   if host.get("disabled_reason") else ""))
    return "; ".join(parts) or None


# -- running the agent --------------------------------------------------------

def resolve_agent(agent):
    """The program to run for ``agent``: an absolute path as it is, a name
    from [fencing] agent_dirs; InvalidInput when there is none."""
    check_agent(agent)
    if os.path.isabs(agent):
        path = agent
    else:
        path = next((os.path.join(d, agent) for d in CONF.fencing.agent_dirs
                     if os.path.isfile(os.path.join(d, agent))), None)
        if path is None:
            raise InvalidInput(
                f"fence agent {agent} not found in [fencing] agent_dirs "
                f"({', '.join(CONF.fencing.agent_dirs)}); is fence-agents "
                "installed?")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise InvalidInput(f"fence agent {agent} is not an executable file")
    return path


class AgentTimeout(DroverError):
    """A fence agent run did not end in time (it was killed)."""


def run_agent(path, options, action, timeout):
    """Run the fence agent at ``path`` once for ``action``: no shell, no
    arguments, the options on stdin.  Returns (exit code, output: stdout
    then stderr).  AgentTimeout after ``timeout`` seconds (the agent and
    what it started are killed)."""
    proc = subprocess.Popen([path], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd="/", start_new_session=True)
    try:
        out, err = proc.communicate(stdin_for(options, action),
                                    timeout=max(0.1, timeout))
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise AgentTimeout(f"action={action} did not end within "
                           f"{timeout:.1f} s") from None
    return proc.returncode, (out or "") + (err or "")


def _kill(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:     # a child kept the pipes open
        for pipe in (proc.stdout, proc.stderr):
            if pipe:
                pipe.close()
        proc.wait(5)


def fence(store, name, progress=lambda message: None, timeout=None,
          interval=None):
    """Fence host ``name`` with its fence agent: ``action=off``, then
    ``action=status`` every ``interval`` seconds ([fencing]
    status_interval) until it reports off, all within ``timeout``
    ([fencing] timeout).  On success the host is marked fenced; returns
    {"host", "agent", "status_checks", "seconds"}.  On failure the host
    is left not fenced, the reason recorded, and DroverError raised with
    it; InvalidInput when the host has no usable fence agent."""
    timeout = CONF.fencing.timeout if timeout is None else timeout
    interval = CONF.fencing.status_interval if interval is None else interval
    host = store.get_host(name)
    agent, options = host["fence_agent"], host["fence_options"] or {}
    if not agent:
        raise InvalidInput(f"host {name} has no fence agent: set one with "
                           f"drover host set --fence-agent AGENT {name}")
    path = resolve_agent(agent)
    started = time.monotonic()
    deadline = started + timeout

    def failed(why):
        reason = f"{agent}: {why}"
        store.fence_failed(name, reason)
        LOG.warning("host %s: fence failed, not fenced: %s", name, reason)
        raise DroverError(f"fence of host {name} failed: {reason}")

    def run(action):
        try:
            return run_agent(path, options, action,
                             deadline - time.monotonic())
        except AgentTimeout:
            failed(f"timed out ([fencing] timeout {timeout} s): "
                   f"action={action} did not end")
        except OSError as err:
            failed(f"cannot run it: {err.strerror or err}")

    LOG.info("host %s: fencing with %s", name, agent)
    progress(f"{agent}: powering {name} off")
    code, output = run("off")
    if code != 0:
        failed(f"action=off failed (exit {code}): "
               f"{reason_from(output, options, code)}")
    checks, last = 0, "no status yet"
    while True:
        checks += 1
        progress(f"{agent}: waiting for {name} to be off (status check "
                 f"{checks})")
        code, output = run("status")
        said = status_from(code, output)
        if said == OFF:
            break
        last = ("status still ON" if said == ON else
                f"status failed (exit {code}): "
                f"{reason_from(output, options, code)}")
        if time.monotonic() + interval >= deadline:
            failed(f"not reported off within {timeout} s: {last}")
        time.sleep(interval)
    store.mark_host_fenced(name)
    seconds = round(time.monotonic() - started, 3)
    LOG.warning("host %s fenced: %s reported it off (%d status checks, "
                "%.1f s)", name, agent, checks, seconds)
    progress(f"{name} is fenced: {agent} reported it off")
    return {"host": name, "agent": agent, "status_checks": checks,
            "seconds": seconds}


# -- drover host fence: a persistent task ------------------------------------

def precheck(services, host, params):
    """Refuse up front (InvalidInput, exit 2) a fence of ``host`` (a store
    record) that cannot run: no fence agent, or one that is not there."""
    if not host["fence_agent"]:
        raise InvalidInput(f"host {host['name']} has no fence agent: set "
                           "one with drover host set --fence-agent AGENT "
                           f"{host['name']}")
    resolve_agent(host["fence_agent"])
    return params


def _fence_step(ctx):
    return fence(ctx.services.store, ctx.params["host"], ctx.progress)


def workflow(params):
    """One step, resumed forward after a restart: off is idempotent, and
    a resumed fence starts again from action=off."""
    return Workflow(KIND, [Step("fence", _fence_step)])


def fence_in_progress(store, name):
    """The id of an unfinished fence task of host ``name``, or None."""
    for task in store.list_tasks(unfinished=True):
        if task["kind"] == KIND and task["params"].get("host") == name:
            return task["id"]
    return None
