"""The lab directory's layout and the files it holds.

::

    LAB_DIR/state.json, .lock     state (agent.lab.state)
    LAB_DIR/hosts, resolv.conf    /etc/hosts and /etc/resolv.conf of hosts
    LAB_DIR/ssh/id_ed25519        lab key: root on every host (host to host)
    LAB_DIR/controller/           controller key, known_hosts, ssh_config
    LAB_DIR/shared/               /var/lib/drover-shared on every host
    LAB_DIR/hI/                   one host: configs, keys, logs and the
                                  directories bind-mounted into it
"""
import contextlib
import os
import shutil

from agent.common import process
from agent.lab import config, emulator
from agent.lab.plan import LOCAL_STORAGE, LOCKSPACE, SHARED_STORAGE

# Host directory -> path it is bind-mounted over inside the host.
LIBVIRT_DIRS = {
    "etc-libvirt": "/etc/libvirt",
    "lib-libvirt": "/var/lib/libvirt",
    "log-libvirt": "/var/log/libvirt",
    "cache-libvirt": "/var/cache/libvirt",
}
KEY = "id_ed25519"


class LabFiles:
    """Paths in one lab directory (all as the root namespace sees them)."""

    def __init__(self, lab_dir):
        self.lab_dir = os.path.abspath(lab_dir)

    @property
    def hosts_file(self):
        return os.path.join(self.lab_dir, "hosts")

    @property
    def resolv_conf(self):
        return os.path.join(self.lab_dir, "resolv.conf")

    @property
    def lab_key(self):
        return os.path.join(self.lab_dir, "ssh", KEY)

    @property
    def controller_dir(self):
        return os.path.join(self.lab_dir, "controller")

    @property
    def controller_key(self):
        return os.path.join(self.controller_dir, KEY)

    @property
    def controller_known_hosts(self):
        return os.path.join(self.controller_dir, "known_hosts")

    @property
    def controller_ssh_config(self):
        return os.path.join(self.controller_dir, "ssh_config")

    @property
    def shared_dir(self):
        return os.path.join(self.lab_dir, "shared")

    @property
    def lockspace_dir(self):
        """virtlockd's leases (LOCKSPACE inside the hosts)."""
        return os.path.join(self.shared_dir,
                            os.path.relpath(LOCKSPACE, SHARED_STORAGE))

    @property
    def qemu_wrapper(self):
        """The lab's QEMU (agent.lab.emulator), bind-mounted over the
        hosts' /usr/bin/qemu-system-x86_64 while this file exists."""
        return os.path.join(self.lab_dir, "qemu-system-x86_64")

    @property
    def qemu_modules(self):
        """A link to the lab's QEMU modules, mounted over the hosts' own
        while it exists."""
        return os.path.join(self.lab_dir, "qemu-modules")

    @property
    def caps_seed(self):
        """libvirt's QEMU capability cache, copied into new hosts."""
        return os.path.join(self.lab_dir, "qemu-caps")

    def caps_cache(self, host):
        return os.path.join(self.host_dir(host), "cache-libvirt", "qemu",
                            "capabilities")

    def host_dir(self, host):
        return os.path.join(self.lab_dir, host.short)

    def host_key(self, host):
        return os.path.join(self.host_dir(host), "ssh_host_ed25519_key")

    def sshd_config(self, host):
        return os.path.join(self.host_dir(host), "sshd_config")

    def root_ssh(self, host):
        return os.path.join(self.host_dir(host), "root-ssh")

    def storage_dir(self, host):
        return os.path.join(self.host_dir(host), "storage")

    def log_dir(self, host=None):
        return os.path.join(self.host_dir(host) if host else self.lab_dir,
                            "log")

    def binds(self, host):
        """(source, target) bind mounts that make up the host's files."""
        hd = self.host_dir(host)
        pairs = [(os.path.join(hd, d), target)
                 for d, target in LIBVIRT_DIRS.items()]
        pairs += [(self.storage_dir(host), LOCAL_STORAGE),
                  (self.shared_dir, SHARED_STORAGE),
                  (self.root_ssh(host), "/root/.ssh"),
                  (self.hosts_file, "/etc/hosts"),
                  (self.resolv_conf, "/etc/resolv.conf")]
        if os.path.exists(self.qemu_wrapper):
            pairs.append((self.qemu_wrapper, emulator.BINARY))
        if os.path.exists(self.qemu_modules):
            pairs.append((self.qemu_modules, emulator.MODULES))
        return pairs


def save_caps_seed(files, host):
    """Keep ``host``'s probed QEMU capabilities for other hosts."""
    shutil.rmtree(files.caps_seed, ignore_errors=True)
    shutil.copytree(files.caps_cache(host), files.caps_seed)


def seed_caps(files, host):
    """Give ``host``'s libvirtd the lab's QEMU capabilities, if known
    (libvirtd checks them against the QEMU binary before use)."""
    if os.path.isdir(files.caps_seed):
        shutil.copytree(files.caps_seed, files.caps_cache(host),
                        dirs_exist_ok=True)


def _write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def _keygen(path, comment):
    """Create an ed25519 key pair unless one exists; return the public
    key as ``TYPE BASE64``."""
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        process.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                     "-C", comment, "-f", path])
    with open(path + ".pub") as f:
        return " ".join(f.read().split()[:2])


def ensure_keys(files, plan, hosts):
    """The lab, controller and host keys; return host name -> public key.

    Existing keys are kept so that a controller configured with them keeps
    working across ``down`` and ``up``.
    """
    os.makedirs(files.shared_dir, exist_ok=True)
    _keygen(files.lab_key, f"{plan.name}-lab")
    _keygen(files.controller_key, f"{plan.name}-controller")
    host_keys = {}
    for h in hosts:
        os.makedirs(files.host_dir(h), exist_ok=True)
        host_keys[h.name] = _keygen(files.host_key(h), h.name)
    return host_keys


def write_lab_files(files, plan, hosts, host_keys):
    """The hosts file, resolv.conf and every known_hosts and ssh_config
    (controller's and each host's root) for ``hosts``."""
    # Rewritten in place: running hosts bind-mount this very inode.
    _write(files.hosts_file, config.hosts_file(plan, hosts))
    _write(files.resolv_conf, config.resolv_conf())
    known = config.known_hosts(hosts, host_keys)
    _write(files.controller_known_hosts, known)
    _write(files.controller_ssh_config, config.ssh_client_config(
        hosts, files.controller_key, files.controller_known_hosts))
    for h in hosts:
        ssh_dir = files.root_ssh(h)
        _write(os.path.join(ssh_dir, "known_hosts"), known)
        _write(os.path.join(ssh_dir, "config"), config.ssh_client_config(
            hosts, f"/root/.ssh/{KEY}", "/root/.ssh/known_hosts"))


def prepare_host(files, host):
    """Fresh per-host directories: libvirt config and state, storage,
    root's ~/.ssh, sshd config.  Everything of an earlier run is wiped
    except the host key."""
    hd = files.host_dir(host)
    for d in [*LIBVIRT_DIRS, "storage", "root-ssh", "log"]:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(os.path.join(hd, d))
    etc = os.path.join(hd, "etc-libvirt")
    shutil.copytree("/etc/libvirt", etc, symlinks=True)
    autostart = os.path.join(etc, "qemu", "networks", "autostart")
    shutil.rmtree(autostart, ignore_errors=True)
    _write(os.path.join(etc, "libvirtd.conf"), config.libvirtd_conf(host))
    _write(os.path.join(etc, "qemu.conf"), config.qemu_conf(host))
    _write(os.path.join(etc, "qemu-lockd.conf"),
           config.qemu_lockd_conf(LOCKSPACE))
    for d in ("lib-libvirt", "log-libvirt", "cache-libvirt", "log"):
        os.makedirs(os.path.join(hd, d), mode=0o755)
    seed_caps(files, host)
    storage = files.storage_dir(host)
    for d in ("instances", "images"):
        os.makedirs(os.path.join(storage, d), mode=0o755)
    os.chmod(storage, 0o755)
    os.makedirs(os.path.join(files.shared_dir, "instances"), exist_ok=True)
    os.makedirs(files.lockspace_dir, mode=0o700, exist_ok=True)
    os.chmod(files.shared_dir, 0o755)
    ssh_dir = files.root_ssh(host)
    os.makedirs(ssh_dir, mode=0o700)
    shutil.copy(files.lab_key, os.path.join(ssh_dir, KEY))
    with open(files.lab_key + ".pub") as f:
        lab_pub = f.read()
    with open(files.controller_key + ".pub") as f:
        ctl_pub = f.read()
    _write(os.path.join(ssh_dir, "authorized_keys"), lab_pub + ctl_pub,
           0o600)
    _write(files.sshd_config(host),
           config.sshd_config(host, files.host_key(host)))
    for target in (LOCAL_STORAGE, SHARED_STORAGE):
        os.makedirs(target, exist_ok=True)   # mount points, empty outside
