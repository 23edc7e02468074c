"""The lab's state file (``LAB_DIR/state.json``), changed under a lock.

Shape: ``{"name", "network", "hosts": {"<index>": {"keeper": REC,
"outer": REC}}, "daemons": [{"host": INDEX or None, "name", "argv",
"log", "pid", "start"}]}`` where REC is ``{"pid", "start"}``
(see agent.lab.procs).  ``host`` None is a daemon in the root namespace.
"""
import contextlib
import fcntl
import json
import os

FILE = "state.json"


def path(lab_dir):
    return os.path.join(lab_dir, FILE)


def empty(name, network):
    return {"name": name, "network": network, "hosts": {}, "daemons": []}


def load(lab_dir):
    """The state, or None if the lab has none."""
    try:
        with open(path(lab_dir)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def save(lab_dir, data):
    tmp = path(lab_dir) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path(lab_dir))


def remove(lab_dir):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path(lab_dir))


@contextlib.contextmanager
def locked(lab_dir):
    """Hold the lab's lock (one changer at a time, across processes)."""
    os.makedirs(lab_dir, exist_ok=True)
    with open(os.path.join(lab_dir, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
