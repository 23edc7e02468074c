"""A private OpenSSH sshd for tests: in a network namespace of its own,
reached over a veth /30 picked from ``block``, with a temporary host key,
client key, authorized_keys and sshd_config (``UsePAM no``; the system's
configuration is not read)."""
import ipaddress
import os
import random
import signal
import socket
import subprocess
import time

SSHD = "/usr/sbin/sshd"


def run(*argv, check=True):
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def keygen(path):
    """A new ed25519 key at ``path``; returns its public line."""
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f",
        str(path))
    return (path.parent / (path.name + ".pub")).read_text()


class Sshd:
    """sshd in network namespace ``<prefix>-<tag>``."""

    def __init__(self, workdir, prefix, block):
        tag = os.urandom(3).hex()
        self.netns = f"{prefix}-{tag}"
        self.veth = f"{prefix}{tag}"            # root side; peer <veth>p
        self.dir = workdir
        self.config = workdir / "sshd_config"
        self.host_key = workdir / "host_key"
        self.client_key = workdir / "id_ed25519"
        self.proc = None
        net = ipaddress.ip_network(block)
        in_use = run("ip", "-o", "-4", "addr", "show").stdout
        subnets = list(net.subnets(new_prefix=30))
        for _ in range(64):
            sub = random.choice(subnets)
            self.gateway, self.address = (str(sub.network_address + 1),
                                          str(sub.network_address + 2))
            if f" {self.gateway}/" not in in_use and \
                    f" {self.address}/" not in in_use:
                break

    def create(self):
        """Namespace, veth, keys and config (sshd not started)."""
        peer = self.veth + "p"
        run("ip", "netns", "add", self.netns)
        run("ip", "link", "add", self.veth, "type", "veth", "peer", "name",
            peer, "netns", self.netns)
        run("ip", "addr", "add", f"{self.gateway}/30", "dev", self.veth)
        run("ip", "link", "set", self.veth, "up")
        inside = ("ip", "netns", "exec", self.netns)
        run(*inside, "ip", "addr", "add", f"{self.address}/30", "dev", peer)
        run(*inside, "ip", "link", "set", peer, "up")
        run(*inside, "ip", "link", "set", "lo", "up")
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privsep dir
        self.host_key_line = self.new_host_key()
        (self.dir / "authorized_keys").write_text(keygen(self.client_key))
        self.config.write_text("\n".join([
            f"ListenAddress {self.address}",
            "Port 22",
            f"HostKey {self.host_key}",
            f"PidFile {self.dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "X11Forwarding no",
            "LogLevel ERROR",
            "",
        ]))

    def new_host_key(self):
        for path in (self.host_key, self.dir / "host_key.pub"):
            if path.exists():
                path.unlink()
        return keygen(self.host_key)

    def start(self):
        log = open(self.dir / "sshd.log", "ab")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, SSHD, "-D", "-e",
             "-f", str(self.config)], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, \
                (self.dir / "sshd.log").read_text()
            try:
                socket.create_connection((self.address, 22), 0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("sshd did not start listening")

    def sessions(self):
        """PIDs in the namespace other than the listening sshd."""
        pids = run("ip", "netns", "pids", self.netns).stdout.split()
        return [int(p) for p in pids if int(p) != self.proc.pid]

    def stop(self):
        """Kill sshd and everything it started (sessions, relays)."""
        for _ in range(50):
            pids = run("ip", "netns", "pids", self.netns,
                       check=False).stdout.split()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        if self.proc is not None:
            self.proc.wait(5)
            self.proc = None

    def destroy(self):
        self.stop()
        run("ip", "netns", "del", self.netns, check=False)
        run("ip", "link", "del", self.veth, check=False)
