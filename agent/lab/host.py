"""One lab host: its keeper (PID 1 of the host's PID, mount and UTS
namespaces, inside its network namespace), its file system, its daemons."""
import os
import socket
import subprocess
import sys
import time

from agent.common import process
from agent.common.errors import DroverError
from agent.lab import procs
from agent.lab.plan import LIBVIRT_TCP_PORT, SSH_PORT

KEEPER = [sys.executable, "-m", "agent.lab.keeper"]
BASE_DAEMONS = ("virtlogd", "virtlockd", "libvirtd", "sshd")


def enter(keeper_pid):
    """argv prefix running a command inside the host of ``keeper_pid``."""
    return ["nsenter", "-t", str(keeper_pid), "-m", "-u", "-n", "-p", "--"]


def start_keeper(host, log_path):
    """Start the keeper; return (outer, keeper) process records.

    ``outer`` is the ``unshare`` process in the root PID namespace that
    waits for the keeper; the keeper is PID 1 of the host.
    """
    argv = ["ip", "netns", "exec", host.netns,
            "unshare", "--mount", "--uts", "--pid", "--fork", "--kill-child",
            "--mount-proc", "--propagation", "private", *KEEPER, "keep"]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=log, start_new_session=True, cwd="/")
    outer = procs.identify(proc.pid)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        kids = procs.children(proc.pid)
        if kids and _is_keeper(kids[0]):
            return outer, procs.identify(kids[0])
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    raise DroverError(f"{host.name}: keeper did not start "
                      f"(see {log_path})")


def _is_keeper(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"agent.lab.keeper" in f.read()
    except OSError:
        return False


def setup_fs(host, keeper_pid, binds):
    """Private /run, per-host bind mounts and the hostname."""
    pre = enter(keeper_pid)
    # The mount namespace was copied from the root one: drop its
    # references to other network namespaces, which would keep them alive.
    process.run(pre + ["umount", "--recursive", "--lazy", "/run/netns"],
                check=False)
    process.run(pre + ["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs",
                       "/run"])
    for source, target in binds:
        if os.path.isdir(source):
            # A fresh machine may lack a mount point (root's ~/.ssh, say):
            # made on the shared root file system, empty, as a login would.
            os.makedirs(target, mode=0o700 if target.startswith("/root")
                        else 0o755, exist_ok=True)
        process.run(pre + ["mount", "--bind", source, target])
    process.run(pre + ["hostname", host.name])
    root = f"/proc/{keeper_pid}/root"
    for d in ("run/libvirt", "run/sshd", "run/lock"):
        os.makedirs(os.path.join(root, d), mode=0o755, exist_ok=True)


def spawn(keeper_pid, argv, log_path, env=None):
    """Start ``argv`` as a daemon inside the host; return its record."""
    out = process.run(enter(keeper_pid) + [*KEEPER, "spawn", log_path,
                                           *argv], env=env, cwd="/")
    inner = int(out.split()[-1])
    pid = procs.outer_pid(keeper_pid, inner)
    if pid is None:
        raise DroverError(f"{argv[0]} exited at once (see {log_path})")
    return procs.identify(pid)


def base_daemons(files, host):
    """name -> argv of the daemons every host runs."""
    return {
        "virtlogd": ["virtlogd"],
        "virtlockd": ["virtlockd"],
        "libvirtd": ["libvirtd", "--listen"],
        "sshd": ["/usr/sbin/sshd", "-D", "-e", "-f", files.sshd_config(host)],
    }


def _port_open(address, port):
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def _libvirt_ready(host):
    """libvirtd accepts TCP before its drivers are up: ask it something."""
    if not _port_open(host.address, LIBVIRT_TCP_PORT):
        return False
    import libvirt
    conn = libvirt.open(host.libvirt_uri)
    try:
        return conn.getHostname() == host.name
    finally:
        conn.close()


def probe_caps(host):
    """Make the host's libvirtd probe QEMU now (it caches the result)."""
    import libvirt
    conn = libvirt.open(host.libvirt_uri)
    try:
        conn.getCapabilities()
    finally:
        conn.close()


def _socket_ready(keeper_pid, path):
    """A UNIX socket inside the host accepts connections."""
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.connect(f"/proc/{keeper_pid}/root{path}")
        return True
    except OSError:
        return False
    finally:
        sock.close()


def wait_ready(host, records, logs, timeout=60.0, network=True,
               keeper_pid=None):
    """Wait until libvirtd and sshd answer on the host's address (and
    virtlockd on its socket).  ``network`` False (the host's link is cut):
    only libvirtd's and virtlockd's sockets inside the host, found through
    ``keeper_pid``, and sshd's being alive are checked."""
    if network:
        checks = {"libvirtd": lambda: _libvirt_ready(host),
                  "sshd": lambda: _port_open(host.address, SSH_PORT)}
    else:
        checks = {"libvirtd": lambda: _socket_ready(
            keeper_pid, "/run/libvirt/libvirt-sock")}
    if keeper_pid is not None:
        checks["virtlockd"] = lambda: _socket_ready(
            keeper_pid, "/run/libvirt/virtlockd-sock")
    deadline = time.monotonic() + timeout
    while checks:
        for name, check in list(checks.items()):
            if not procs.alive(records[name]):
                raise DroverError(f"{host.name}: {name} died "
                                  f"(see {logs[name]})")
            if check():
                del checks[name]
        if checks and time.monotonic() > deadline:
            raise DroverError(f"{host.name}: {', '.join(checks)} not "
                              f"answering after {timeout:.0f} s")
        if checks:
            time.sleep(0.05)
