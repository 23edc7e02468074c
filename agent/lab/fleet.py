"""drover itself on the lab: an agent in every host, one controller in the
root namespace, hosts and the lab guest image registered with it.

The default lab's controller listens on the CLI's default socket, so
``drover host list`` works right after ``drover lab up`` with no flags;
other labs (tests) keep theirs in their lab directory.

``--database postgresql``: a PostgreSQL server of the lab's own (a root
daemon "postgres", data in /tmp/drover-lab-pg-NAME, loopback port) holds
the state; ``--controllers N`` (PostgreSQL only) starts N controllers on
it, drover-controller, drover-controller-2, ..., each with its own API
socket; one leads, the others stand by.  The choice is kept in the lab's
controller/topology.json, so a later ``lab up`` keeps it.
"""
import configparser
import contextlib
import json
import os
import pathlib
import shutil
import socket
import sys
import tempfile
import time

from agent.common.errors import DroverError, InvalidInput, NotFound
from agent.conf import CONF
from agent.lab import plan as lab_plan
from agent.lab.pgserver import PgServer, free_port
from agent.transport.local import LocalClient

AGENT = "drover-agent"
CONTROLLER = "drover-controller"
POSTGRES = "postgres"
DATABASES = ("sqlite", "postgresql")
PG_DATABASE = "drover"
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


def controller_name(index=0):
    """Lab daemon name of controller ``index`` (0, 1, ...)."""
    return CONTROLLER if index == 0 else f"{CONTROLLER}-{index + 1}"


def _controller_dir(lab, index=0):
    return os.path.join(lab.lab_dir, "controller" if index == 0
                        else f"controller-{index + 1}")


def controller_socket(lab, index=0):
    if lab.plan.name == "drover" and index == 0:
        return CONF.controller.socket_path
    return os.path.join(_controller_dir(lab, index), "controller.sock")


# -- the lab's choice of database and controllers ---------------------------

def _topology_path(lab):
    return os.path.join(_controller_dir(lab), "topology.json")


def topology(lab):
    """{"controllers": N, "database": sqlite|postgresql, "pg_port": P}."""
    try:
        with open(_topology_path(lab)) as f:
            return json.load(f)
    except FileNotFoundError:
        return {"controllers": 1, "database": "sqlite", "pg_port": None}


def _save_topology(lab, topo):
    os.makedirs(_controller_dir(lab), exist_ok=True)
    with open(_topology_path(lab), "w") as f:
        json.dump(topo, f)


def choose(lab, controllers=None, database=None):
    """Record the lab's database and number of controllers (None: keep
    what it has).  InvalidInput for two controllers on SQLite."""
    topo = topology(lab)
    if database is not None:
        if database not in DATABASES:
            raise InvalidInput(f"unknown database {database!r}: use "
                               "sqlite or postgresql")
        topo["database"] = database
    if controllers is not None:
        topo["controllers"] = controllers
    if topo["controllers"] < 1:
        raise InvalidInput("--controllers must be at least 1")
    if topo["controllers"] > 1 and topo["database"] != "postgresql":
        raise InvalidInput("more than one controller needs --database "
                           "postgresql (SQLite allows one controller)")
    if topo["database"] == "postgresql" and not topo.get("pg_port"):
        topo["pg_port"] = free_port()
    _save_topology(lab, topo)
    return topo


def pg_server(lab):
    """The lab's PostgreSQL server (running or not)."""
    return PgServer(datadir=os.path.join(
        tempfile.gettempdir(), f"drover-lab-pg-{lab.plan.name}"),
        port=topology(lab)["pg_port"])


def _start_postgres(lab, progress):
    server = pg_server(lab)
    if not _daemon_up(lab, POSTGRES):
        progress("starting PostgreSQL")
        server.initdb()
        lab.start_daemon(None, POSTGRES, server.daemon_argv())
    server.wait_ready()
    if not server.has_database(PG_DATABASE):
        server.create_database(PG_DATABASE)
    return server.url(PG_DATABASE)


def _daemon_up(lab, name):
    from agent.lab import procs
    return any(d["host"] is None and d["name"] == name and procs.alive(d)
               for d in lab.daemons())


def database_url(lab):
    """The URL of the lab's state store."""
    if topology(lab)["database"] == "postgresql":
        return pg_server(lab).url(PG_DATABASE)
    return f"sqlite:///{_controller_dir(lab)}/drover.db"


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


def metrics_listen(lab, index=0):
    """127.0.0.1:PORT of controller ``index``'s metrics endpoint: the one
    its conf already names (the controller may be running), else a free
    port."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(os.path.join(_controller_dir(lab, index), "controller.conf"))
    listen = parser.get("controller", "metrics_listen", fallback="")
    if listen:
        return listen
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def controller_conf(lab, index=0, options=None):
    """Controller ``index``'s config file; ``options`` ({group: {name:
    value}}) added to it (a test's own settings, e.g. [compute]
    rescue_timeout)."""
    ssh = lab.controller_ssh
    first, last = lab.plan.guest_range
    cdir = _controller_dir(lab, index)
    sections = {
        "DEFAULT": {"debug": True},
        "database": {"connection": database_url(lab),
                     "name": f"controller-{index + 1}",
                     "leader_poll_interval": 0.5},
        "controller": {
            "socket_path": controller_socket(lab, index),
            # One image store for all: the lab's controllers share a disk.
            "image_store_path": os.path.join(_controller_dir(lab),
                                             "images"),
            "poll_interval": 2, "host_down_after": 6,
            "guest_network": str(lab.plan.network),
            "guest_address_range": f"{first}-{last}",
            "metrics_listen": metrics_listen(lab, index)},
        "ssh": {"user": ssh["user"], "private_key": ssh["private_key"],
                "known_hosts": ssh["known_hosts"],
                "relay_command": f"{_python()} -m agent.host.daemon relay"},
        "libvirt": {"shutdown_timeout": 20},
        # A lab controller is started and stopped by tests: it waits the
        # least grace that still covers a lease and its margin (10 + 3).
        "ha": {"startup_grace": 15},
    }
    for group, values in (options or {}).items():
        sections[group] = {**sections.get(group, {}), **values}
    return _write_conf(os.path.join(cdir, "controller.conf"), sections)


def _wait_socket(path, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return LocalClient(path, timeout=120)
        except OSError:
            time.sleep(0.1)
    raise DroverError(f"{what} did not start within {timeout} s "
                      f"(no socket at {path})")


def start(lab, image_path, progress=print, controller_options=None):
    """Start agents and the controller (those not running), register the
    hosts, the lab guest image and the lab flavors.  Idempotent.
    ``controller_options``: see controller_conf (for a controller that
    starts now)."""
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
    topo = topology(lab)
    if topo["database"] == "postgresql":
        _start_postgres(lab, progress)
    for index in range(topo["controllers"]):
        start_controller(lab, index, progress, controller_options)
    with leader_client(lab) as client:
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
        return client.path


def start_controller(lab, index=0, progress=print, options=None):
    """Start controller ``index`` unless it runs (a standby when another
    one leads); ``options``: see controller_conf."""
    conf_path = controller_conf(lab, index, options)
    if not _controller_up(lab, index):
        progress(f"starting {controller_name(index)}")
        lab.start_daemon(None, controller_name(index),
                         [_python(), "-m", "agent.controller.daemon",
                          "--config-file", conf_path])
    _wait_socket(controller_socket(lab, index),
                 controller_name(index)).close()


def leader_client(lab, timeout=30):
    """An API client of the controller that leads (waiting for one)."""
    deadline = time.monotonic() + timeout
    while True:
        for index in range(topology(lab)["controllers"]):
            try:
                client = LocalClient(controller_socket(lab, index),
                                     timeout=120)
            except OSError:
                continue
            try:
                if client.call("controller.leader")["role"] == "leader":
                    return client
            except (DroverError, OSError):      # dying, or a standby
                pass
            client.close()
        if time.monotonic() > deadline:
            raise DroverError(f"no lab controller leads after {timeout} s")
        time.sleep(0.2)


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


def up(lab, count, image_path, progress=print, controllers=None,
       database=None):
    """Bring the lab's hosts up, then drover on them.  A lab whose hosts
    were all down starts with clean hosts (lab.up wipes their storage), so
    its controller starts with a clean database and image store too: old
    records would describe guests that no longer exist."""
    fresh = all(h["state"] == "down" for h in lab.status())
    if fresh:
        reset(lab)
    choose(lab, controllers, database)
    lab.up(count, progress=progress)
    return start(lab, image_path, progress=progress)


def reset(lab):
    """Stop the controllers and forget their state (not their SSH keys):
    the SQLite file, or the lab's PostgreSQL server and its data."""
    for d in lab.daemons():
        if d["host"] is None and d["name"].startswith(CONTROLLER):
            with contextlib.suppress(NotFound):
                lab.stop_daemon(None, d["name"])
    with contextlib.suppress(NotFound):
        lab.stop_daemon(None, POSTGRES, timeout=10)
    if topology(lab).get("pg_port"):
        shutil.rmtree(pg_server(lab).dir, ignore_errors=True)
    cdir = _controller_dir(lab)
    for name in ("drover.db", "drover.db-wal", "drover.db-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(cdir, name))
    shutil.rmtree(os.path.join(cdir, "images"), ignore_errors=True)


def down(lab, progress=print):
    """``lab.down`` plus the lab's PostgreSQL data directory."""
    pg = pg_server(lab) if topology(lab).get("pg_port") else None
    lab.down(progress=progress)
    if pg is not None:
        shutil.rmtree(pg.dir, ignore_errors=True)


def _controller_up(lab, index=0):
    try:
        LocalClient(controller_socket(lab, index), timeout=5).close()
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
