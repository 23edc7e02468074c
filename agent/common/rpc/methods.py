"""The agent's RPC methods, as data: one table both ends check against.

The agent registers exactly these (``RpcServer(path, methods=AGENT)``
refuses a name not in the table or a function whose parameters differ,
``register_group`` registers a group's methods by their table names,
and the daemon refuses to start with an entry left unimplemented); the
controller's client (agent.transport.ssh.AgentClient) refuses, before
sending anything, a call of an unknown method or with missing or unknown
parameters, and takes its default timeout from here.  The controller's
own API socket uses the same server without a table.

``idempotent``: running the method a second time, after the first run or
while it still runs, does no harm (no second effect, no data lost; the
second run may answer with an error that the first run's effect
explains, e.g. Conflict).  Only such a method may be sent again after a
connection was lost once the request may have reached the agent: its
worker keeps running when the connection goes.  (agent.transport.ssh
resends only a line it never sent whole, which is never run.)  The
agent's primitives are meant to be idempotent; the entries marked False
say why they are not.
"""
import dataclasses
import inspect

# The wire vocabulary of migration.start|status|wait|abort|force_complete
# |list: a live-migration job's "status".
QUEUED = "queued"
PREPARING = "preparing"
RUNNING = "running"
POSTCOPY = "postcopy"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
ACTIVE = frozenset({QUEUED, PREPARING, RUNNING, POSTCOPY})


class MethodMismatch(ValueError):
    """A call or an implementation that does not match its method table:
    a programming error; such a call is never sent."""


@dataclasses.dataclass(frozen=True)
class Method:
    """One RPC method: its parameters (by name), the seconds a caller
    waits for its reply by default (None: [ssh] rpc_timeout), whether it
    is idempotent (see the module's docstring)."""
    name: str
    required: tuple = ()
    optional: tuple = ()
    timeout: float | None = None
    idempotent: bool = True
    doc: str = ""

    def check_params(self, params):
        """MethodMismatch unless ``params`` (names) fit this method."""
        missing = [p for p in self.required if p not in params]
        unknown = sorted(set(params) - set(self.required)
                         - set(self.optional))
        if missing or unknown:
            raise MethodMismatch(
                f"call of {self.name}({self.parameters()}): "
                + "; ".join(filter(None, (
                    missing and "missing " + ", ".join(missing),
                    unknown and "unknown " + ", ".join(unknown)))))

    def check_signature(self, fn):
        """MethodMismatch unless ``fn`` takes exactly this method's
        parameters, the optional ones with defaults."""
        required, optional = [], []
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):
            signature = None
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                 inspect.Parameter.KEYWORD_ONLY)
        for param in (signature.parameters.values() if signature else ()):
            if param.kind not in kinds:
                signature = None
                break
            (required if param.default is param.empty
             else optional).append(param.name)
        if signature is None or set(required) != set(self.required) or \
                set(optional) != set(self.optional):
            raise MethodMismatch(
                f"{self.name}: the table says ({self.parameters()}), "
                f"the implementation takes {signature or '*args/**kwargs'}")

    def parameters(self):
        return ", ".join(list(self.required)
                         + [f"[{p}]" for p in self.optional])


def table(*methods):
    """A method table: name -> Method."""
    return {m.name: m for m in methods}


# Served by RpcServer itself, on every socket.
BUILTIN = table(
    Method("subscribe", optional=("events",),
           doc="Have this connection get notifications (all, or the "
               "named events)."),
    Method("unsubscribe", doc="Stop getting notifications."),
)


def check_call(methods, name, params):
    """The Method ``name`` of ``methods`` (or a built-in) that ``params``
    fit; MethodMismatch otherwise."""
    method = methods.get(name) or BUILTIN.get(name)
    if method is None:
        raise MethodMismatch(f"no RPC method {name!r} in the method table")
    method.check_params(params)
    return method


_UUID = ("uuid",)
_DIR = ("uuid", "storage")

AGENT = table(
    # -- the host (agent.host.facts, agent.host.image_cache) --------------
    Method("host.facts", timeout=30,
           doc="Resources, versions, paths and domains of the host."),
    Method("host.inventory", timeout=30,
           doc="Read only: the host's domains and its instance directories "
               "per storage (the audit compares them with the store)."),
    # -- the lease and self-fencing (agent.host.self_fence) ----------------
    Method("host.lease_renew", ("lease_time", "peers", "ha_instances"),
           doc="Grant the lease for lease_time s from now (monotonic); the "
               "peers to probe ([{name, address}]) and this host's HA "
               "instances (destroyed if it fences itself). Returns "
               "{fenced, reason, expires_in, destroyed, ha_instances}."),
    Method("host.peer_view",
           doc="{peer: seconds since it last answered a probe, or None: "
               "no opinion yet}."),
    Method("host.lease_clear",
           doc="The controller has reconciled this fenced host: guests may "
               "start again; not fenced: nothing to do."),
    Method("image.status", ("uuid",),
           doc="Whether the image is in the host's cache; its paths."),
    Method("image.commit", ("uuid", "sha256", "size", "format"),
           doc="Check the uploaded .part (size, sha256, format) and put "
               "it into the cache; an image already there is kept."),

    # -- instances (agent.host.instances) ---------------------------------
    Method("instance.prepare",
           ("uuid", "storage", "image_path", "image_format", "disk_gb"),
           ("flatten",),
           doc="Instance directory and a qcow2 overlay on the cached "
               "image (flatten: a standalone copy of it); the same "
               "overlay again is kept, a flattened disk never rewritten."),
    Method("instance.define", ("spec",),
           doc="Define (or redefine identically) the domain of a spec."),
    Method("instance.start", _UUID, doc="Start; a running one: False."),
    Method("instance.stop", _UUID, ("shutdown_timeout",),
           doc="Graceful shutdown, destroy after the timeout; off "
               "already: said so."),
    Method("instance.destroy", _UUID, doc="Stop at once; stopped: False."),
    Method("instance.undefine", _UUID, doc="Undefine; none: False."),
    Method("instance.cleanup", _DIR,
           doc="Remove the instance directory; absent: False."),
    Method("instance.rescue_disk",
           ("uuid", "storage", "image_path", "image_format"),
           doc="A fresh qcow2 overlay of the cached rescue image in the "
               "instance directory (disk.rescue); an older one replaced; "
               "the domain running from it: Conflict."),
    Method("instance.rescue_define", ("spec",),
           doc="Redefine the domain of a spec to boot disk.rescue, its own "
               "disks attached after it and not booted; again: the same."),
    Method("instance.rescue_cleanup", _DIR,
           doc="Remove disk.rescue; absent: False; the domain running "
               "from it: Conflict."),
    Method("instance.info", _UUID, doc="State, vCPUs, memory."),
    Method("instance.console_log", _DIR, ("lines",),
           doc="The last lines of the console log."),

    # -- snapshots of an instance's disk (agent.host.snapshots) ----------
    Method("snapshot.create", ("uuid", "storage", "image_uuid"),
           ("dest_dir", "checksum"), timeout=3600,
           doc="A standalone compact qcow2 of the disk as it is now (a "
               "running guest: libvirt's backup job, no pause; stopped: "
               "qemu-img), beside it or in dest_dir (the image store, "
               "shared); found made: kept.  Path, size, sha256 (if "
               "checksum)."),
    Method("snapshot.remove", ("uuid", "storage", "image_uuid"),
           ("dest_dir",),
           doc="Remove that snapshot file; absent: False."),

    # -- is a storage shared? (agent.host.storage) ------------------------
    Method("storage.probe_write", ("storage",), idempotent=False,
           doc="Write a new probe file, return its name.  Not "
               "idempotent: each run writes another file, and the one "
               "whose name the caller never learns stays behind."),
    Method("storage.probe_check", ("storage", "name"),
           doc="Whether another host's probe file is seen here."),
    Method("storage.probe_remove", ("storage", "name"),
           doc="Remove a probe file; absent: False."),

    # -- cold migration and resize (agent.host.moves) ---------------------
    Method("move.base", ("storage",),
           doc="Where this host keeps instance directories."),
    Method("move.power_off", _UUID, ("shutdown_timeout",),
           doc="Shut down, destroy after the timeout; gone or off: ok."),
    Method("move.to_resize", _DIR,
           doc="Rename <uuid> to <uuid>_resize; done already: False."),
    Method("move.restore", _DIR,
           doc="Rename <uuid>_resize back to <uuid>; done already: False."),
    Method("move.discard", _DIR,
           doc="Remove <uuid>_resize; absent: False."),
    Method("move.convert_raw", _DIR, idempotent=False,
           doc="Flatten the _resize disk to raw in place.  Not "
               "idempotent: a run after the first finds it raw, but one "
               "overlapping it writes the same disk.part, and the first "
               "can rename the second's half-written file over the only "
               "copy of the disk."),
    Method("move.copy_start", ("key", "uuid", "storage"),
           ("dest_address", "dest_base"),
           doc="Start the background copy job ``key`` (the migration "
               "uuid); a job of that key running or done is kept."),
    Method("move.copy_status", ("key",),
           doc="State and progress of copy job ``key``."),
    Method("move.finish_disk", ("uuid", "storage", "disk_gb"),
           ("image_path", "image_format"),
           doc="Rebase onto this host's cached image, grow to disk_gb; "
               "both are no-ops once done."),

    # -- live migration jobs, on the source (agent.host.live) -------------
    Method("migration.start",
           ("uuid", "dest_address", "migration_address", "migration_uuid"),
           ("block_migration", "shared_storage_checked"),
           doc="Start the job of ``migration_uuid``; that migration "
               "again finds its job, running or finished."),
    Method("migration.status", _UUID, doc="The job's status."),
    Method("migration.wait", _UUID, ("wait_s",), timeout=90,
           doc="The job's status once it ended or after wait_s (at most "
               "60 s)."),
    Method("migration.abort", _UUID,
           doc="Cancel the job; a finished one: Conflict."),
    Method("migration.force_complete", _UUID,
           doc="Post-copy or pause so the job converges; a finished one: "
               "Conflict."),
    Method("migration.list", doc="Status of every job held."),
    Method("migration.inputs", _UUID, ("block_migration", "seconds"),
           timeout=60,
           doc="What a prediction needs, measured now: memory, its "
               "non-zero part, the dirty rate over ``seconds`` (libvirt's "
               "page sampling pooled with the agent's larger sample of "
               "memory peeks), the disk data a block migration copies, "
               "this agent's [migration] policy.  Read only."),

    # -- live migration, source and destination (agent.host.live) ---------
    Method("live.disk_facts", _DIR,
           doc="Size and backing file of the disk, its targets."),
    Method("live.cleanup_source", _DIR,
           doc="Remove the local directory of a guest that left; still "
               "defined here: Conflict."),
    Method("live.prepare_dest", _DIR, ("block_migration", "disk_facts"),
           doc="Destination directory and disks, bridge check; the same "
               "disk again is kept."),
    Method("live.cleanup_dest", _DIR, ("source_state",),
           doc="After a failed migration, what dest_cleanup.decide allows "
               "given the source's domain state: libvirt's incoming copy "
               "destroyed, the destination's local copy removed; a domain "
               "running here: Conflict."),
)
