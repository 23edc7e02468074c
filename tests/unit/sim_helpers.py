"""A controller over a real store and the simulated fleet (agent.sim),
for workflow tests: run operations, inject faults, read the tables, and
judge the outcome against the two promises and the audit."""
import shutil
import sqlite3

from agent.common.errors import DroverError
from agent.controller import audit, periodic, states
from agent.controller.db import Store, upgrade
from agent.sim.fleet import ControllerCrash, Fleet

_TEMPLATE = {}

POLL_S = 2.0            # between two polls of the controller
FLAVORS = (("small", 1, 256, 1), ("big", 2, 512, 3))
# The task kind and the operation (states.OPERATIONS) of each verb.
VERBS = {"migrate": ("cold_migrate", "migrate"),
         "resize": ("resize", "resize"),
         "confirm": ("resize_confirm", "resize-confirm"),
         "revert": ("resize_revert", "resize-revert"),
         "live": ("live_migrate", "live-migrate"),
         "delete": ("delete", "delete"),
         "stop": ("stop", "stop"), "start": ("start", "start"),
         "reboot": ("reboot", "reboot"),
         "rescue": ("rescue", "rescue"),
         "unrescue": ("unrescue", "unrescue"),
         "snapshot": ("snapshot", "image-create"),
         "shelve": ("shelve", "shelve"), "unshelve": ("unshelve", "unshelve")}


def new_store(tmp_path):
    """A migrated, empty store (the schema is built once per session)."""
    if "path" not in _TEMPLATE:
        path = tmp_path.parent / "sim-template.db"
        upgrade(f"sqlite:///{path}")
        _TEMPLATE["path"] = path
    path = tmp_path / "drover.db"
    shutil.copyfile(_TEMPLATE["path"], path)
    return Store(f"sqlite:///{path}")


def _backup(src, dest):
    with sqlite3.connect(src) as a, sqlite3.connect(dest) as b:
        a.backup(b)
    a.close()
    b.close()


def _reused_store(tmp_path, db_path):
    """One store for every lab made from a snapshot, its content replaced
    by the snapshot's: its engine keeps its compiled statements (most of
    the time of a short test is SQLAlchemy compiling them afresh)."""
    if "store" not in _TEMPLATE:
        path = tmp_path.parent / "sim-reused.db"
        _backup(db_path, path)
        _TEMPLATE["store"] = (path, Store(f"sqlite:///{path}"))
    path, store = _TEMPLATE["store"]
    _backup(db_path, path)
    return store


class SimLab:
    """One controller, one store, a simulated fleet (h1, h2, h3 by
    default), its clock installed in the controller's modules.

    ``snapshot`` (from ``snapshot()``): start from a recorded state, in a
    store reused between labs."""

    def __init__(self, tmp_path, hosts=("h1", "h2", "h3"), snapshot=None,
                 **host_args):
        self.crashed = False
        self._own_store = snapshot is None
        if snapshot is not None:
            db_path, world = snapshot
            self.store = _reused_store(tmp_path, db_path)
            self.fleet = Fleet.from_snapshot(world)
            self.fleet.controller(self.store, register=False)
        else:
            self.fleet = Fleet(hosts, **host_args)
            self.store = new_store(tmp_path)
            for flavor in FLAVORS:
                self.store.create_flavor(*flavor)
            self.store.create_image("img", "/images/img", "qcow2", 1 << 30,
                                    1 << 24, checksum="x")
            self.fleet.controller(self.store)
        self._uninstall = self.fleet.clock.install()

    def guests_with_data(self):
        """Instances whose disk holds their data now (a boot made it):
        the judge checks that it is never lost."""
        return {i["uuid"] for i in self.store.list_instances()
                if self._data_anywhere(i["uuid"])}

    def snapshot(self, path):
        """The store (copied to ``path``) and the fleet, for SimLab(...,
        snapshot=)."""
        _backup(self.store.db.url.removeprefix("sqlite:///"), path)
        return path, self.fleet.snapshot()

    @property
    def svc(self):
        return self.fleet.svc

    def use_real_clock(self):
        self._uninstall()

    def close(self):
        self._uninstall()
        self.svc.engine.shutdown()
        if self._own_store:
            self.store.close()

    # -- operations -------------------------------------------------------

    def uuid(self, name):
        return self.store.get_instance(name, deleted=True)["uuid"]

    def _run(self, submit):
        """Run what ``submit()`` admits (inline, to its end); its task, or
        None when the controller crashed on the way."""
        before = {t["id"] for t in self.store.list_tasks()}
        try:
            submit()
        except ControllerCrash:
            self.crashed = True
            return None
        new = [t for t in self.store.list_tasks() if t["id"] not in before]
        return self.store.task_get(new[0]["id"])

    def boot(self, name, host=None, storage="local", flavor="small"):
        return self._run(lambda: self.svc.admission.create(
            name, flavor, "img", host=host, storage=storage))

    def op(self, verb, name, **params):
        """Any other operation on instance ``name`` (see VERBS), through
        the admission path."""
        _, operation = VERBS[verb]
        return self._run(lambda: self.svc.admission.submit(
            operation, name, **params))

    def restart_controller(self):
        self.crashed = False
        self.fleet.restart_controller()

    def periodic(self):
        """The controller's periodic work: the move tasks, then a poll of
        every host (facts, power-state sync)."""
        periodic.finish_rollbacks(self.svc)
        periodic.retry_reverts(self.svc)
        periodic.auto_confirm(self.svc)
        periodic.auto_unrescue(self.svc)
        for task in self.store.list_tasks(unfinished=True):
            self.svc.engine.wait(task["id"])
        self.fleet.clock.advance(POLL_S)
        self.fleet.poll()

    # -- tables -----------------------------------------------------------

    def _names(self):
        names = {i["uuid"]: i["name"]
                 for i in self.store.list_instances(deleted=True)}
        for mig in self.store.list_migrations():
            names[mig["uuid"]] = "mig:" + names.get(mig["instance_uuid"],
                                                    "?")
        return names

    def instances(self):
        return [(i["name"], i["host"], i["status"], i["task_state"])
                for i in self.store.list_instances()]

    def migrations(self):
        names = self._names()
        return [(names[m["instance_uuid"]], m["type"], m["status"],
                 m["source_host"], m["dest_host"])
                for m in reversed(self.store.list_migrations())]

    def claims(self):
        names = self._names()
        return sorted((a["host"], names.get(a["consumer"], a["consumer"]),
                       a["vcpus"], a["ram_mb"])
                      for a in self.store.list_allocations())

    def domains(self):
        """(instance name, host, state) of every domain in the fleet."""
        names = self._names()
        return sorted((names.get(u, u), h.name, d.state)
                      for h in self.fleet.world.hosts.values()
                      for u, d in h.domains.items())

    def directories(self):
        """(namespace, instance name + suffix) of every directory."""
        names = self._names()
        out = []
        for ns, dirs in self.fleet.world.storage.items():
            for name in dirs:
                uuid, suffix = audit.parse_dir(name)
                out.append((ns, names.get(uuid, uuid) + suffix))
        return sorted(out)

    # -- judgement --------------------------------------------------------

    def audit(self):
        return audit.run(self.store, self.svc.hosts)

    def judge(self, had_data=()):
        """Every way the fleet and the database disagree, or break a
        promise, as lines; [] when consistent.  ``had_data``: instances
        whose data existed before (guests_with_data)."""
        problems = [f"audit: {f['kind']} {f['host']} {f['instance']}: "
                    f"{f['detail']}" for f in self.audit()]
        world = self.fleet.world
        for inst in self.store.list_instances():
            name, uuid = inst["name"], inst["uuid"]
            defined = world.where_defined(uuid)
            running = world.where_running(uuid)
            if len(running) > 1:
                problems.append(f"{name} runs on {running}")
            owners = {inst["host"]} | {
                h for m in self.store.list_migrations(
                    instance_uuid=uuid, in_progress=True)
                for h in (m["source_host"], m["dest_host"])}
            if inst["host"] and not set(defined) <= owners:
                problems.append(f"{name} is defined on {defined}, the "
                                f"database says {inst['host']}")
            if inst["task_state"] is not None:
                problems.append(f"{name} stuck in task_state "
                                f"{inst['task_state']}")
            if inst["host"] and inst["vm_state"] != states.ERROR:
                runs = inst["host"] in running
                says = inst["power_state"] == states.RUNNING
                if runs != says:
                    problems.append(f"{name}: power_state "
                                    f"{inst['power_state']}, running: "
                                    f"{runs}")
            if uuid in had_data and not self._data_anywhere(uuid):
                problems.append(f"{name}: DATA LOST (no disk holds it)")
            elif inst["host"] and self._data_anywhere(uuid) and \
                    not self._data_on_host(inst):
                problems.append(f"{name}: its data is not in its "
                                f"directory on {inst['host']} "
                                f"({world.dirs_of(uuid)})")
        for task in self.store.list_tasks(unfinished=True):
            problems.append(f"task {task['id']} ({task['kind']}) "
                            f"unfinished: {task['state']}")
        return problems

    def _data_anywhere(self, uuid):
        return any(d.data == f"data-{uuid}"
                   for dirs in self.fleet.world.storage.values()
                   for d in dirs.values()) or self._data_in_image(uuid)

    def _data_in_image(self, uuid):
        """A shelved instance's data: its image's file in the store."""
        image = self.store.get_instance(uuid, deleted=True).get(
            "shelved_image_uuid")
        if not image:
            return False
        try:
            with open(self.store.get_image(image)["path"]) as f:
                return f.read() == f"data-{uuid}"
        except (OSError, DroverError):
            return False

    def _data_on_host(self, inst):
        host = self.fleet.host(inst["host"])
        disk = self.fleet.world.dirs(host, inst["storage"]).get(inst["uuid"])
        return disk is not None and disk.data == f"data-{inst['uuid']}"
