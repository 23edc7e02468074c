"""What integration tests use to drive drover and look at guests."""
import json
import os
import pathlib
import subprocess
import sys
import threading
import time
import urllib.request

import libvirt

from agent.transport.local import LocalClient

DROVER = [sys.executable, "-m", "agent.cli.main"]
ROOT = pathlib.Path(__file__).resolve().parents[2]


class Fleet:
    def __init__(self, lab, socket):
        self.lab = lab
        self.socket = socket
        self.hosts = {h["name"]: h for h in lab.status()}

    # -- the CLI and the API ------------------------------------------------

    def cli(self, *args, check=True, timeout=600):
        """Run ``drover ARGS``; returns (exit code, stdout, stderr)."""
        return self.cli_at(self.socket, *args, check=check,
                           timeout=timeout)

    def cli_at(self, socket, *args, check=True, timeout=600):
        """``cli`` on the controller API at ``socket``."""
        proc = subprocess.run(
            DROVER + ["--controller-socket", socket, *args],
            capture_output=True, text=True, timeout=timeout, cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)))
        if check and proc.returncode != 0:
            raise AssertionError(f"drover {' '.join(args)} exited "
                                 f"{proc.returncode}: {proc.stderr}")
        return proc.returncode, proc.stdout, proc.stderr

    def json(self, *args):
        return json.loads(self.cli(*args, "-f", "json")[1])

    def call(self, method, **params):
        with LocalClient(self.socket, timeout=120) as client:
            return client.call(method, **params)

    def server(self, name):
        return self.call("server.show", name=name)

    def create(self, name, flavor="lab.small", *extra):
        return self.json("server", "create", name, "--flavor", flavor,
                         "--image", "lab-guest", "--wait", *extra)

    def wait_task(self, task_id, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = self.call("task.show", id=task_id)
            if task["state"] in ("done", "failed"):
                return task
            time.sleep(0.2)
        raise AssertionError(f"task {task_id} still running")

    def delete_servers(self, names):
        tasks = []
        for name in names:
            try:
                tasks.append(self.call("server.delete", name=name)["task_id"])
            except Exception:       # already gone, or never made
                pass
        for task_id in tasks:
            self.wait_task(task_id)

    def delete_all_servers(self):
        self.delete_servers([s["Name"] for s in self.call("server.list")])

    # -- libvirt, as each host sees it ----------------------------------------

    def domains(self, host):
        """{uuid: state name} of every domain libvirt has on ``host``."""
        conn = libvirt.open(self.hosts[host]["libvirt_uri"])
        try:
            out = {}
            for dom in conn.listAllDomains(0):
                try:
                    state = dom.state()[0]
                except libvirt.libvirtError:     # gone since listed
                    continue
                out[dom.UUIDString()] = (
                    "running" if state == libvirt.VIR_DOMAIN_RUNNING
                    else "paused" if state == libvirt.VIR_DOMAIN_PAUSED
                    else "shutoff")
            return out
        finally:
            conn.close()

    def running_inside(self, host):
        """Uuids of the domains running on ``host``, asked inside it (its
        libvirt's local socket): works while its link is cut."""
        out = self.host_exec(host, ["virsh", "-c", "qemu:///system", "list",
                                    "--uuid", "--state-running"],
                             timeout=20)
        return {u.strip() for u in out.splitlines() if u.strip()}

    def all_domains(self):
        return {h: self.domains(h) for h in self.hosts}

    def domains_of(self, uuid):
        """{host: state} of every host whose libvirt has the domain."""
        return {h: doms[uuid] for h, doms in self.all_domains().items()
                if uuid in doms}

    def settled_on(self, uuid, expected, timeout=10):
        """``domains_of(uuid)`` once it is ``expected``; a live migration's
        source stops its copy about 0.2 s after drover's command ended
        (drover ends at the switch-over).  AssertionError with what was
        seen last."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.domains_of(uuid)
            if seen == expected or time.monotonic() > deadline:
                assert seen == expected, seen
                return seen
            time.sleep(0.05)

    def host_exec(self, host, argv, **kw):
        return self.lab.host_exec(host, argv, **kw)

    def ping(self, from_host, address, count=1):
        """True if ``address`` answers ping from inside ``from_host``."""
        proc = subprocess.run(
            self.lab.host_argv(from_host, ["ping", "-c", str(count), "-W",
                                           "1", address]),
            capture_output=True, text=True)
        return proc.returncode == 0


class Sampler:
    """Every host's running domains, every 200 ms, in the background;
    ``doubles``: (uuid, hosts) seen running on two hosts at once.  The
    hosts in ``inside`` (those whose link a test cuts: a TCP connection
    to their libvirt would wait for its timeout) are asked inside their
    namespaces, through their libvirt's local socket."""

    def __init__(self, fleet, inside=()):
        self.fleet, self.doubles, self.samples = fleet, [], 0
        self.inside = set(inside)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _running(self, host):
        if host in self.inside:
            return self.fleet.running_inside(host)
        try:
            return {u for u, state in self.fleet.domains(host).items()
                    if state in ("running", "paused")}
        except libvirt.libvirtError:
            return set()

    def _run(self):
        while not self._stop.is_set():
            where = {}
            for host in self.fleet.hosts:
                for uuid in self._running(host):
                    where.setdefault(uuid, []).append(host)
            self.doubles += [(u, h) for u, h in where.items() if len(h) > 1]
            self.samples += 1
            self._stop.wait(0.2)

    def stop(self):
        self._stop.set()
        self._thread.join(10)


# -- the guest's own control server (see agent/lab/guest) ---------------------

def guest_get(ip, path, timeout=5):
    with urllib.request.urlopen(f"http://{ip}{path}",
                                timeout=timeout) as resp:
        return resp.read().decode().strip()


def guest_status(ip):
    """{"uptime": float, "boot": id, "dirty_mbps": ...} from the guest."""
    fields = dict(kv.split("=", 1) for kv in guest_get(ip, "/cgi-bin/status")
                  .split())
    fields["uptime"] = float(fields["uptime"])
    return fields


def wait_guest(ip, timeout=60):
    """Wait until the guest answers; returns its status."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            return guest_status(ip)
        except OSError as err:
            last = err
            time.sleep(0.3)
    raise AssertionError(f"guest {ip} did not answer in {timeout} s: {last}")


def audit_rows(fleet):
    """``drover fleet audit -f json``: its findings (exit 1 iff any)."""
    rc, out, err = fleet.cli("fleet", "audit", "-f", "json", check=False)
    rows = json.loads(out)
    assert rc == (1 if rows else 0), (rc, err)
    return rows


def finding_key(row):
    return (row["Kind"], row["Host"], row["Instance"], row["Detail"])


def new_findings(fleet, before, wait_s=60):
    """Findings of the audit that are not in ``before`` (keys), once the
    clean-ups that run in the background have had ``wait_s`` seconds."""
    deadline = time.monotonic() + wait_s
    while True:
        new = [r for r in audit_rows(fleet) if finding_key(r) not in before]
        if not new or time.monotonic() >= deadline:
            return new
        time.sleep(2)


def wait_for(predicate, timeout, what):
    """Poll ``predicate`` every 0.5 s until it is true (returns the
    monotonic time then); AssertionError "``what`` within N s" if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout} s")


def controller_pid(fleet):
    """The PID of the session lab's controller."""
    from agent.lab import fleet as lab_fleet
    for d in fleet.lab._state()["daemons"]:
        if d["name"] == lab_fleet.CONTROLLER and d["host"] is None:
            return d["pid"]
    raise AssertionError("no controller")


def process_alive(pid):
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def restart_controller(fleet, kill=False, options=None):
    """Stop the controller (SIGKILL first with ``kill``) and start it
    again with ``options`` ({group: {name: value}}) added to its
    configuration, or with the lab's own when None."""
    import signal
    from agent.lab import fleet as lab_fleet
    if kill:
        os.kill(controller_pid(fleet), signal.SIGKILL)
    fleet.lab.stop_daemon(None, lab_fleet.CONTROLLER)
    lab_fleet.start(fleet.lab, image_path=None, progress=lambda m: None,
                    controller_options=options)
