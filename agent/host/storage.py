"""Is a storage shared with another host?  A probe file written in the
storage's instances path here is looked for there (libvirt cannot tell
for a plain directory, and NFS, CephFS or a lab bind mount all look like
one)."""
import os
import secrets

from agent.common.errors import InvalidInput
from agent.host import instances

PROBE_PREFIX = ".drover-probe-"


def _probe(storage, name):
    if not name.startswith(PROBE_PREFIX) or \
            not name[len(PROBE_PREFIX):].isalnum():
        raise InvalidInput(f"not a probe file name: {name!r}")
    return os.path.join(instances.base_path(storage), name)


def probe_write(storage):
    """A uniquely named file in the storage's instances path; its name."""
    base = instances.base_path(storage)
    os.makedirs(base, exist_ok=True)
    name = PROBE_PREFIX + secrets.token_hex(8)
    with open(os.path.join(base, name), "x") as f:
        f.write(name)
    return {"name": name}


def probe_check(storage, name):
    """Whether the probe another host wrote is seen here."""
    try:
        with open(_probe(storage, name)) as f:
            return {"found": f.read() == name}
    except FileNotFoundError:
        return {"found": False}


def probe_remove(storage, name):
    try:
        os.unlink(_probe(storage, name))
    except FileNotFoundError:
        return {"removed": False}
    return {"removed": True}
