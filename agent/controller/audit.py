"""Does the database match the hosts?  (``drover fleet audit``, in the
manner of ``nova-manage placement audit``: it reports, it changes
nothing.)

``audit(db, reports)`` is a pure function.  ``db`` is what the store says:

- ``instances``: live instances (uuid, name, host, storage, vm_state,
  task_state);
- ``allocations``: claims (host, consumer, instance_uuid);
- ``migrations``: migrations in progress (uuid, instance_uuid, type,
  status, source_host, dest_host), "finished" ones (waiting for confirm
  or revert) included;
- ``hosts``: the host names.

``reports`` maps a host name to what its agent's ``host.inventory``
returned (``domains`` with their state, ``directories`` per storage), or
to ``{"error": reason}`` for a host that could not be asked.  A domain
marked ``leaving`` is a live migration's source copy that libvirt is
still stopping after the switch-over (the guest runs on the
destination): not reported.

An instance owns its uuid's domain and directory on its host; a migration
in progress also owns them on its source and destination (a move's
``<uuid>_resize`` on the source, a copy in flight).  An instance busy in
a task (task_state set) is only an owner: what it lacks may be on its
way.  Findings are dicts (kind, host, instance, detail), sorted.

``database_view(store)`` and ``host_reports(hosts, names)`` read the two
sides (the edges); ``run(store, hosts)`` is all three.
"""
import re

from agent.common.errors import DroverError

UNREACHABLE = "unreachable"
ORPHAN_DOMAIN = "orphan-domain"
MISSING_DOMAIN = "missing-domain"
RUNNING_TWICE = "running-twice"
RUNNING_ELSEWHERE = "running-elsewhere"
ORPHAN_CLAIM = "orphan-claim"
MISSING_CLAIM = "missing-claim"
CLAIM_WRONG_HOST = "claim-wrong-host"
ORPHAN_DIRECTORY = "orphan-directory"
MISSING_DIRECTORY = "missing-directory"
KINDS = (UNREACHABLE, ORPHAN_DOMAIN, MISSING_DOMAIN, RUNNING_TWICE,
         RUNNING_ELSEWHERE, ORPHAN_CLAIM, MISSING_CLAIM, CLAIM_WRONG_HOST,
         ORPHAN_DIRECTORY, MISSING_DIRECTORY)

RUNNING = ("running", "paused", "blocked")
SHARED = "shared"       # the host column of findings on shared storage
_DIR = re.compile(r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                  r"[0-9a-f]{12})(_resize|_copying)?$")


def finding(kind, host, instance, detail):
    return {"kind": kind, "host": host, "instance": instance,
            "detail": detail}


def parse_dir(name):
    """(uuid, suffix) of an instance directory's name, or None."""
    m = _DIR.match(name)
    return (m.group(1), m.group(2) or "") if m else None


class _View:
    """The database's side, indexed."""

    def __init__(self, db):
        self.instances = {i["uuid"]: i for i in db["instances"]}
        self.migrations = {m["uuid"]: m for m in db["migrations"]}
        self.moving = {}
        for mig in db["migrations"]:
            self.moving.setdefault(mig["instance_uuid"], []).append(mig)

    def name(self, uuid):
        inst = self.instances.get(uuid)
        return inst["name"] if inst else uuid

    def hosts_of(self, uuid):
        """Hosts where the instance's domain or directory may be."""
        inst = self.instances.get(uuid)
        hosts = {inst["host"]} if inst and inst["host"] else set()
        for mig in self.moving.get(uuid, ()):
            hosts.update(h for h in (mig["source_host"], mig["dest_host"])
                         if h)
        return hosts

    def moved_on(self, uuid, host):
        return any(host in (m["source_host"], m["dest_host"])
                   for m in self.moving.get(uuid, ()))

    def settled(self):
        """Instances on a host and not busy in a task."""
        return [i for i in self.instances.values()
                if i["host"] and i["task_state"] is None]


def audit(db, reports):
    view = _View(db)
    found = []
    reached = {}
    for host in sorted(db["hosts"]):
        report = reports.get(host) or {"error": "not asked"}
        if "error" in report:
            found.append(finding(UNREACHABLE, host, None, report["error"]))
        else:
            reached[host] = report
    found += _domains(view, reached)
    found += _claims(view, db["allocations"])
    found += _directories(view, reached)
    return sorted(found, key=lambda f: (f["kind"], f["host"] or "",
                                        f["instance"] or "",
                                        f["detail"]))


def _domains(view, reached):
    found, running = [], {}
    for host, report in reached.items():
        have = {d["uuid"]: d["state"] for d in report["domains"]
                if not d.get("leaving")}
        for uuid, state in have.items():
            if state in RUNNING:
                running.setdefault(uuid, []).append(host)
            if host not in view.hosts_of(uuid):
                inst = view.instances.get(uuid)
                why = "no such instance" if inst is None else \
                    f"the instance is on {inst['host'] or 'no host'}"
                found.append(finding(ORPHAN_DOMAIN, host, view.name(uuid),
                                     f"domain {state}; {why}"))
        for inst in view.settled():
            if inst["host"] == host and inst["uuid"] not in have:
                found.append(finding(
                    MISSING_DOMAIN, host, inst["name"],
                    f"{inst['vm_state']} here in the database; no domain"))
    for uuid, hosts in sorted(running.items()):
        if len(hosts) > 1:
            found.append(finding(RUNNING_TWICE, ",".join(sorted(hosts)),
                                 view.name(uuid), "running on "
                                 + " and ".join(sorted(hosts))))
            continue
        inst = view.instances.get(uuid)
        if inst and inst["task_state"] is None and inst["host"] and \
                hosts[0] != inst["host"] and inst["host"] in reached:
            found.append(finding(RUNNING_ELSEWHERE, hosts[0], inst["name"],
                                 f"running here; the database says "
                                 f"{inst['host']}"))
    return found


def _claims(view, allocations):
    found, held = [], {}
    for alloc in allocations:
        consumer, host = alloc["consumer"], alloc["host"]
        inst = view.instances.get(consumer)
        mig = view.migrations.get(consumer)
        if inst is not None:
            held.setdefault(consumer, set()).add(host)
            allowed = {inst["host"]} | {m["source_host"] for m in
                                        view.moving.get(consumer, ())}
            if inst["task_state"] is None and host not in allowed:
                found.append(finding(CLAIM_WRONG_HOST, host, inst["name"],
                                     f"the instance is on "
                                     f"{inst['host'] or 'no host'}"))
        elif mig is not None:
            owner = mig["instance_uuid"]
            held.setdefault(owner, set()).add(host)
            if mig["dest_host"] and host != mig["dest_host"]:
                found.append(finding(
                    CLAIM_WRONG_HOST, host, view.name(owner),
                    f"claim of {mig['type']} {consumer} whose "
                    f"destination is {mig['dest_host']}"))
        else:
            owner = alloc.get("instance_uuid")
            found.append(finding(
                ORPHAN_CLAIM, host, view.name(owner) if owner else None,
                f"consumer {consumer} is no instance or migration in "
                "progress"))
    for inst in view.settled():
        if inst["host"] not in held.get(inst["uuid"], ()):
            found.append(finding(MISSING_CLAIM, inst["host"], inst["name"],
                                 "no claim on its host"))
    return found


def _directories(view, reached):
    found, shared = [], set()
    for host, report in reached.items():
        dirs = report.get("directories") or {}
        shared.update(dirs.get("shared") or ())
        local = set(dirs.get("local") or ())
        for name in sorted(local):
            if not _owned(view, parse_dir(name), "local", host):
                found.append(finding(ORPHAN_DIRECTORY, host,
                                     _dir_owner(view, name),
                                     f"local {name}"))
        for inst in view.settled():
            if inst["host"] == host and inst["storage"] == "local" and \
                    inst["uuid"] not in local:
                found.append(finding(MISSING_DIRECTORY, host, inst["name"],
                                     f"no local {inst['uuid']}"))
    sees_shared = any("shared" in (r.get("directories") or {})
                      for r in reached.values())
    for name in sorted(shared):
        if not _owned(view, parse_dir(name), "shared", None):
            found.append(finding(ORPHAN_DIRECTORY, SHARED,
                                 _dir_owner(view, name), f"shared {name}"))
    for inst in view.settled():
        if inst["storage"] == "shared" and sees_shared and \
                inst["uuid"] not in shared:
            found.append(finding(MISSING_DIRECTORY, SHARED, inst["name"],
                                 f"no shared {inst['uuid']}"))
    return found


def _dir_owner(view, name):
    parsed = parse_dir(name)
    return view.name(parsed[0]) if parsed else None


def _owned(view, parsed, storage, host):
    if parsed is None:
        return True         # not an instance directory: not ours to judge
    uuid, suffix = parsed
    inst = view.instances.get(uuid)
    if inst is None or inst["storage"] != storage:
        return False
    if storage == "shared":
        return suffix == "" or bool(view.moving.get(uuid))
    if suffix == "":
        return host in view.hosts_of(uuid)
    return view.moved_on(uuid, host)


# -- the edges ------------------------------------------------------------

INSTANCE_KEYS = ("uuid", "name", "host", "storage", "vm_state",
                 "task_state")
MIGRATION_KEYS = ("uuid", "instance_uuid", "type", "status", "source_host",
                  "dest_host")


def database_view(store):
    return {
        "instances": [{k: i[k] for k in INSTANCE_KEYS}
                      for i in store.list_instances()],
        "allocations": [{k: a[k] for k in ("host", "consumer",
                                           "instance_uuid")}
                        for a in store.list_allocations()],
        "migrations": [{k: m[k] for k in MIGRATION_KEYS}
                       for m in store.list_migrations(in_progress=True)],
        "hosts": [h["name"] for h in store.list_hosts()],
    }


def host_reports(hosts, names):
    """Each host's ``host.inventory``, or {"error": why not}."""
    out = {}
    for name in names:
        try:
            out[name] = hosts.call(name, "host.inventory", timeout=30)
        except DroverError as err:
            out[name] = {"error": str(err).splitlines()[0] if str(err)
                         else type(err).__name__}
    return out


def run(store, hosts):
    db = database_view(store)
    return audit(db, host_reports(hosts, db["hosts"]))
