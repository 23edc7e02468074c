"""Which lab directory owns a lab name on this machine.

Namespaces and interfaces are named after the lab, so two labs of one name
would tear down each other's hosts as leftovers.  ``up`` claims the name
(refused while another directory's lab of that name runs) and ``down``
gives it back.
"""
import contextlib
import fcntl
import json
import os

from agent.common.errors import Conflict

DIR = "/run/drover-lab"


@contextlib.contextmanager
def _locked(root):
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _path(root, name):
    return os.path.join(root, f"{name}.json")


def owner(name, root=DIR):
    try:
        with open(_path(root, name)) as f:
            return json.load(f)["lab_dir"]
    except FileNotFoundError:
        return None


def claim(name, lab_dir, is_up, root=DIR):
    """Own ``name`` for ``lab_dir`` unless another running lab owns it
    (``is_up(other_lab_dir)``)."""
    with _locked(root):
        other = owner(name, root)
        if other and other != lab_dir and is_up(other):
            raise Conflict(f"lab name {name} is used by the lab in {other};"
                           " choose another name")
        with open(_path(root, name), "w") as f:
            json.dump({"lab_dir": lab_dir}, f)


def release(name, lab_dir, root=DIR):
    with _locked(root):
        if owner(name, root) == lab_dir:
            os.unlink(_path(root, name))
