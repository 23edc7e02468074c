"""Live-migration pre-checks and choices as pure functions: may this
instance go live from ``source`` to ``dest`` (host records as the store
returns them), and is it a block migration."""
from agent.common.errors import Conflict, InvalidInput
from agent.controller import states

_MOVABLE_POWER = (states.RUNNING, states.POWER_PAUSED)


def version_tuple(text):
    """``"9.0.0"`` -> ``(9, 0, 0)``; unknown parts count as 0."""
    out = []
    for part in str(text or "0").split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits or 0))
    return tuple(out)


def check_instance(inst):
    """ACTIVE (running) or PAUSED, on a host, not busy with another task."""
    name = inst["name"]
    if inst["vm_state"] not in (states.ACTIVE, states.PAUSED) or \
            inst["power_state"] not in _MOVABLE_POWER:
        status = states.status(inst["vm_state"], inst["task_state"])
        raise Conflict(f"instance {name} is not running or paused "
                       f"({status}, power state {inst['power_state']}); live "
                       "migration needs a running guest")
    if not inst.get("host"):
        raise Conflict(f"instance {name} is on no host")


def check_hosts(source, dest):
    """The destination can take a live migration from the source."""
    if dest["name"] == source["name"]:
        raise InvalidInput(f"destination {dest['name']} is the instance's "
                           "own host")
    if dest["state"] != "up":
        raise Conflict(f"destination {dest['name']} is down")
    if not dest["enabled"]:
        reason = dest.get("disabled_reason")
        raise Conflict(f"destination {dest['name']} is disabled"
                       + (f" ({reason})" if reason else ""))
    if (source.get("hypervisor_type") or "") != \
            (dest.get("hypervisor_type") or ""):
        raise Conflict(f"hypervisor types differ: {source['name']} has "
                       f"{source.get('hypervisor_type')}, {dest['name']} "
                       f"has {dest.get('hypervisor_type')}")
    if (source.get("cpu_model") or "") != (dest.get("cpu_model") or ""):
        raise Conflict(f"CPU models differ: {source['name']} has "
                       f"{source.get('cpu_model') or 'host-model'}, "
                       f"{dest['name']} has "
                       f"{dest.get('cpu_model') or 'host-model'}")
    for what in ("libvirt_version", "qemu_version"):
        if version_tuple(dest.get(what)) < version_tuple(source.get(what)):
            raise Conflict(f"{dest['name']}'s {what.replace('_', ' ')} "
                           f"{dest.get(what)} is older than "
                           f"{source['name']}'s {source.get(what)}")


def choose_block(requested, shared):
    """True for a block migration.  ``requested``: None (choose), True
    (--block-migration) or False (shared storage asked for); ``shared``:
    the result of the storage probe between the two hosts."""
    if requested is None:
        return not shared
    if requested and shared:
        raise InvalidInput("block migration refused: the instance's storage "
                           "is shared between the hosts (leave out "
                           "--block-migration)")
    if not requested and not shared:
        raise InvalidInput("shared-storage live migration refused: the "
                           "hosts do not share the instance's storage (use "
                           "--block-migration)")
    return bool(requested)
