"""drover itself on the lab: an agent in every host, one controller in the
root namespace, hosts and the lab guest image registered with it.

The default lab's controller listens on the CLI's default socket, so
``drover host list`` works right after ``drover lab up`` with no flags;
other labs (tests) keep theirs in their lab directory.
"""
import configparser
import contextlib
import os
import pathlib
import shutil
import sys
import time

from agent.common.errors import DroverError, NotFound
from agent.conf import CONF
from agent.lab import plan as lab_plan
from agent.transport.local import LocalClient

AGENT = "drover-agent"
CONTROLLER = "drover-controller"
IMAGE_NAME = "lab-guest"
# Each lab host offers a slice of this machine (they all share it).
HOST_VCPUS, HOST_MEMORY_MB, HOST_DISK_GB = 8, 4096, 40
FENCE_AGENT = "fence_drover_lab"
# How the controller's RPC server answers a method it does not have.
UNKNOWN_METHOD = "no such RPC method"
FLAVORS = (("lab.small", 1, 256, 1), ("lab.medium", 1, 384, 2),
           ("lab.large", 2, 512, 3))


def _python():
    return sys.executable


def _write_conf(path, sections):
    parser = configparser.ConfigParser(interpolation=None)
    for section, values in sections.items():
        parser[section] = {k: str(v) for k, v in values.items()
                           if v is not None}
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        parser.write(f)
    return str(path)


def controller_socket(lab):
    if lab.plan.name == "drover":
        return CONF.controller.socket_path
    return os.path.join(lab.lab_dir, "controller", "controller.sock")


def agent_conf(lab, host):
    return _write_conf(os.path.join(lab.lab_dir, host["name"], "agent.conf"),
                       {"DEFAULT": {"host": host["name"]},
                        "libvirt": {"virt_type": "qemu",
                                    "shutdown_timeout": 20},
                        "migration": {"dest_uri_template":
                                      "qemu+tcp://{address}/system"},
                        "agent": {
                            "instances_path":
                                f"{lab_plan.LOCAL_STORAGE}/instances",
                            "shared_instances_path":
                                f"{lab_plan.SHARED_STORAGE}/instances",
                            "image_cache_path":
                                f"{lab_plan.LOCAL_STORAGE}/images",
                            "bridge": lab_plan.GUEST_BRIDGE,
                            "migration_address": host["address"],
                            "reported_vcpus": HOST_VCPUS,
                            "reported_memory_mb": HOST_MEMORY_MB,
                            "reported_disk_gb": HOST_DISK_GB}})


def controller_conf(lab):
    ssh = lab.controller_ssh
    first, last = lab.plan.guest_range
    cdir = os.path.join(lab.lab_dir, "controller")
    return _write_conf(os.path.join(cdir, "controller.conf"), {
        "DEFAULT": {"debug": True},
        "controller": {
            "database_url": f"sqlite:///{cdir}/drover.db",
            "socket_path": controller_socket(lab),
            "image_store_path": os.path.join(cdir, "images"),
            "poll_interval": 2, "host_down_after": 6,
            "guest_network": str(lab.plan.network),
            "guest_address_range": f"{first}-{last}"},
        "ssh": {"user": ssh["user"], "private_key": ssh["private_key"],
                "known_hosts": ssh["known_hosts"],
                "relay_command": f"{_python()} -m agent.host.daemon relay"},
        "libvirt": {"shutdown_timeout": 20},
        # A lab controller is started and stopped by tests: it waits the
        # least grace that still covers a lease and its margin (10 + 3).
        "ha": {"startup_grace": 15},
    })


def _wait_socket(path, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return LocalClient(path, timeout=120)
        except OSError:
            time.sleep(0.1)
    raise DroverError(f"{what} did not start within {timeout} s "
                      f"(no socket at {path})")


def start(lab, image_path, progress=print):
    """Start agents and the controller (those not running), register the
    hosts, the lab guest image and the lab flavors.  Idempotent."""
    hosts = lab.status()
    for host in hosts:
        if host["daemons"].get(AGENT) != "up":
            progress(f"starting {AGENT} on {host['name']}")
            lab.start_daemon(host["name"], AGENT,
                             [_python(), "-m", "agent.host.daemon",
                              "--config-file", agent_conf(lab, host)])
    for host in hosts:
        lab.host_exec(host["name"], [_python(), "-c", _WAIT_AGENT],
                      timeout=30)
    conf_path = controller_conf(lab)
    if not _controller_up(lab):
        progress(f"starting {CONTROLLER}")
        lab.start_daemon(None, CONTROLLER,
                         [_python(), "-m", "agent.controller.daemon",
                          "--config-file", conf_path])
    with _wait_socket(controller_socket(lab), CONTROLLER) as client:
        known = {h["Name"] for h in client.call("host.list")}
        for host in hosts:
            if host["name"] not in known:
                progress(f"registering host {host['name']}")
                client.call("host.add", name=host["name"],
                            address=host["address"])
        if IMAGE_NAME not in {i["Name"] for i in client.call("image.list")}:
            progress(f"registering image {IMAGE_NAME}")
            client.call("image.create", name=IMAGE_NAME,
                        path=str(image_path), disk_format="qcow2")
        have = {f["Name"] for f in client.call("flavor.list")}
        for name, vcpus, ram, disk in FLAVORS:
            if name not in have:
                client.call("flavor.create", name=name, vcpus=vcpus,
                            ram_mb=ram, disk_gb=disk)
        register_fencing(client, lab, hosts, progress)
    return controller_socket(lab)


def fence_agent():
    """The lab fence agent installed next to the running python."""
    return os.path.join(os.path.dirname(sys.executable), FENCE_AGENT)


def fence_options(lab, host_name):
    return {"plug": host_name, "lab_dir": lab.lab_dir}


def register_fencing(client, lab, hosts, progress=print):
    """Make the lab fence agent every host's fence method
    (``host.set_fence``).  A controller without that method is told
    nothing and the lab runs without fencing."""
    for host in hosts:
        try:
            client.call("host.set_fence", name=host["name"],
                        agent=fence_agent(),
                        options=fence_options(lab, host["name"]))
        except NotFound as err:
            if not str(err).startswith(UNKNOWN_METHOD):
                raise
            progress("controller has no host.set_fence: lab hosts "
                     "registered without a fence agent")
            return


def up(lab, count, image_path, progress=print):
    """Bring the lab's hosts up, then drover on them.  A lab whose hosts
    were all down starts with clean hosts (lab.up wipes their storage), so
    its controller starts with a clean database and image store too: old
    records would describe guests that no longer exist."""
    fresh = all(h["state"] == "down" for h in lab.status())
    lab.up(count, progress=progress)
    if fresh:
        reset(lab)
    return start(lab, image_path, progress=progress)


def reset(lab):
    """Stop the controller and forget its state (not its SSH keys)."""
    with contextlib.suppress(NotFound):
        lab.stop_daemon(None, CONTROLLER)
    cdir = os.path.join(lab.lab_dir, "controller")
    for name in ("drover.db", "drover.db-wal", "drover.db-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(cdir, name))
    shutil.rmtree(os.path.join(cdir, "images"), ignore_errors=True)


def _controller_up(lab):
    try:
        LocalClient(controller_socket(lab), timeout=5).close()
        return True
    except OSError:
        return False


# Run inside a host: wait until its agent answers on its socket.
_WAIT_AGENT = """
import socket, sys, time
from agent.conf import CONF
CONF([], project="drover", default_config_files=[])
deadline = time.monotonic() + 25
while time.monotonic() < deadline:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(CONF.agent.socket_path)
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
    finally:
        s.close()
sys.exit("the agent did not open its socket")
"""
