"""Domain primitives on a Connection, each idempotent.

Domains are named by UUID.  Running a primitive twice does no harm:
defining an identical domain again, starting a running one, destroying a
stopped one or undefining a missing one succeeds and says so in its
return value.
"""
import dataclasses
import time

import libvirt

from agent.common.errors import (Conflict, DroverError, InvalidInput,
                                 NotFound, one_line)
from agent.conf import CONF
from agent.common import validate

POWER_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: "nostate",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "blocked",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_SHUTOFF: "shutoff",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "pmsuspended",
}

# Why a domain is in its state (virDomainGetState's reason), for the
# states whose reason drover acts on.
PAUSED_REASONS = {
    libvirt.VIR_DOMAIN_PAUSED_USER: "user",
    libvirt.VIR_DOMAIN_PAUSED_MIGRATION: "migration",
    libvirt.VIR_DOMAIN_PAUSED_STARTING_UP: "starting-up",
    libvirt.VIR_DOMAIN_PAUSED_POSTCOPY: "postcopy",
    libvirt.VIR_DOMAIN_PAUSED_POSTCOPY_FAILED: "postcopy-failed",
    libvirt.VIR_DOMAIN_PAUSED_IOERROR: "ioerror",
}
RUNNING_REASONS = {
    libvirt.VIR_DOMAIN_RUNNING_BOOTED: "booted",
    libvirt.VIR_DOMAIN_RUNNING_MIGRATED: "migrated",
    libvirt.VIR_DOMAIN_RUNNING_UNPAUSED: "unpaused",
    libvirt.VIR_DOMAIN_RUNNING_MIGRATION_CANCELED: "migration-canceled",
    libvirt.VIR_DOMAIN_RUNNING_POSTCOPY: "postcopy",
    libvirt.VIR_DOMAIN_RUNNING_POSTCOPY_FAILED: "postcopy-failed",
}

# What shutdown() did.
ALREADY_OFF = "already-off"
SHUT_DOWN = "shutdown"
DESTROYED = "destroyed"

POLL_INTERVAL = 0.5
# Guests that are still booting miss an ACPI power-button press.
SHUTDOWN_RESEND_INTERVAL = 10

UNDEFINE_FLAGS = (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                  | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                  | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
                  | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)


@dataclasses.dataclass(frozen=True)
class DomainInfo:
    uuid: str
    name: str
    state: str
    vcpus: int
    memory_mib: int
    cpu_time_ns: int
    persistent: bool


def define(conn, xml):
    """Define (or redefine) the domain in ``xml``, validated against
    libvirt's schema; return its UUID."""
    return conn.call(_define, xml)


def start(conn, uuid):
    """Start the domain; False if it was running already."""
    return conn.call(_start, validate.uuid(uuid))


def shutdown(conn, uuid, timeout=None):
    """Shut the guest down gracefully (ACPI), destroying it after
    ``timeout`` seconds ([libvirt] shutdown_timeout).

    Returns ALREADY_OFF, SHUT_DOWN or DESTROYED.
    """
    timeout = CONF.libvirt.shutdown_timeout if timeout is None else timeout
    return conn.call(_shutdown, validate.uuid(uuid), timeout)


def destroy(conn, uuid):
    """Stop the guest at once (virsh destroy); False if it was not running
    or does not exist."""
    return conn.call(_destroy_uuid, validate.uuid(uuid))


def undefine(conn, uuid):
    """Remove the domain's persistent definition (with managed save,
    snapshot/checkpoint metadata and NVRAM); False if there was none.
    A running guest keeps running as a transient domain."""
    return conn.call(_undefine, validate.uuid(uuid))


def autostart_off(conn, prefix="instance-"):
    """Turn libvirt's autostart off on every domain named ``prefix``...
    (drover's); returns the UUIDs it was on for.  A host that comes back
    must start nothing by itself: the controller decides."""
    return conn.call(_autostart_off, prefix)


def lookup(conn, uuid):
    """The virDomain with ``uuid``; NotFound if there is none."""
    return conn.call(_lookup, validate.uuid(uuid))


def exists(conn, uuid):
    """True if a domain with ``uuid`` is defined or running."""
    try:
        lookup(conn, uuid)
    except NotFound:
        return False
    return True


def get_xml(conn, uuid, inactive=False):
    """The domain's XML: live, or its persistent definition if
    ``inactive``."""
    flags = libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0
    return conn.call(lambda c, u: _lookup(c, u).XMLDesc(flags),
                     validate.uuid(uuid))


def info(conn, uuid):
    """DomainInfo of one domain."""
    return conn.call(lambda c, u: _info(_lookup(c, u)), validate.uuid(uuid))


def state(conn, uuid):
    """(state, reason) of the domain, e.g. ("paused", "migration") for
    libvirt's incoming copy during a live migration; the reason is
    "unknown" when drover has no name for it.  None if there is no such
    domain."""
    return conn.call(_state, validate.uuid(uuid))


def list_domains(conn):
    """DomainInfo of every domain, running or not."""
    return conn.call(_list)


def _define(c, xml):
    try:
        return c.defineXMLFlags(
            xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE).UUIDString()
    except libvirt.libvirtError as err:
        code = err.get_error_code()
        if code == libvirt.VIR_ERR_OPERATION_FAILED and \
                "already exists" in (err.get_error_message() or ""):
            raise Conflict(one_line(err)) from None
        if code in (libvirt.VIR_ERR_XML_ERROR,
                    libvirt.VIR_ERR_XML_INVALID_SCHEMA,
                    libvirt.VIR_ERR_XML_DETAIL):
            # The schema's complaint is on the line after the first.
            lines = (err.get_error_message() or str(err)).splitlines()
            raise InvalidInput("libvirt refused the domain XML: "
                               + ": ".join(lines[:2])) from None
        raise


def _start(c, uuid):
    dom = _lookup(c, uuid)
    if dom.isActive():
        return False
    try:
        dom.create()
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID \
                and _is_active(dom):
            return False
        raise DroverError(f"cannot start domain {uuid}: "
                          + one_line(err)) from None
    return True


def _shutdown(c, uuid, timeout):
    dom = _lookup(c, uuid)
    if not _is_active(dom):
        return ALREADY_OFF
    start = time.monotonic()
    pressed = None
    while time.monotonic() - start < timeout:
        if pressed is None or \
                time.monotonic() - pressed >= SHUTDOWN_RESEND_INTERVAL:
            if not _still_there(dom.shutdown):
                return SHUT_DOWN
            pressed = time.monotonic()
        time.sleep(POLL_INTERVAL)
        if not _is_active(dom):
            return SHUT_DOWN
    return DESTROYED if _destroy(dom) else SHUT_DOWN


def _destroy_uuid(c, uuid):
    try:
        dom = _lookup(c, uuid)
    except NotFound:
        return False
    return _destroy(dom)


def _undefine(c, uuid):
    try:
        dom = _lookup(c, uuid)
    except NotFound:
        return False
    if not dom.isPersistent():
        return False
    try:
        dom.undefineFlags(UNDEFINE_FLAGS)
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return False
        raise
    return True


def _list(c):
    result = []
    for dom in c.listAllDomains(0):
        try:
            result.append(_info(dom))
        except NotFound:        # went away while listed
            continue
    return result


def _state(c, uuid):
    try:
        state, reason = _lookup(c, uuid).state()
    except NotFound:
        return None
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise
    reasons = {libvirt.VIR_DOMAIN_PAUSED: PAUSED_REASONS,
               libvirt.VIR_DOMAIN_RUNNING: RUNNING_REASONS}.get(state, {})
    return POWER_STATES.get(state, "nostate"), reasons.get(reason, "unknown")


def _autostart_off(c, prefix):
    changed = []
    for dom in c.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_AUTOSTART):
        if dom.name().startswith(prefix) and dom.autostart():
            dom.setAutostart(0)
            changed.append(dom.UUIDString())
    return changed


def _lookup(c, uuid):
    try:
        return c.lookupByUUIDString(uuid)
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            raise NotFound(f"no domain with UUID {uuid}") from None
        raise


def _info(dom):
    """DomainInfo; NotFound when the domain went away after its lookup
    (a migrated guest's source undefines it while its stopped event is
    still being handled)."""
    try:
        state, _max_kib, mem_kib, vcpus, cpu_time = dom.info()
        persistent = bool(dom.isPersistent())
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            raise NotFound(f"no domain with UUID {dom.UUIDString()}") \
                from None
        raise
    return DomainInfo(uuid=dom.UUIDString(), name=dom.name(),
                      state=POWER_STATES.get(state, "nostate"),
                      vcpus=vcpus, memory_mib=mem_kib // 1024,
                      cpu_time_ns=cpu_time, persistent=persistent)


def _destroy(dom):
    """True if ``dom`` was running and is now stopped."""
    try:
        dom.destroy()
    except libvirt.libvirtError as err:
        if err.get_error_code() in (libvirt.VIR_ERR_OPERATION_INVALID,
                                    libvirt.VIR_ERR_NO_DOMAIN):
            return False
        raise DroverError(f"cannot destroy domain {dom.UUIDString()}: "
                          + one_line(err)) from None
    return True


def _is_active(dom):
    try:
        return bool(dom.isActive())
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return False
        raise


def _still_there(fn):
    """Run ``fn``; False if the domain stopped or vanished meanwhile."""
    try:
        fn()
    except libvirt.libvirtError as err:
        if err.get_error_code() in (libvirt.VIR_ERR_OPERATION_INVALID,
                                    libvirt.VIR_ERR_NO_DOMAIN):
            return False
        raise
    return True
