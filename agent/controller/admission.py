"""The one way an operation starts.

The API, the periodic jobs and parent operations (a host drain starting
live migrations) all come here, so every operation passes the same gates
in the same order:

1. the operation's row in the table (agent.controller.ops.OPERATIONS);
2. its precheck: what can be known before anything is written (unknown
   flavor, image, zone or host, a disk that would shrink, a destination
   that cannot take the guest) is refused here, exit 2, nothing created;
3. in one transaction (Store.admit_task): the instance is free (no task
   owns it) and in a state the row's rule allows; its task_state is set,
   the instance action recorded, the task created and made the instance's
   owner (the fencing token every later update carries);
4. the engine starts the task.

Host operations (drain) pass 1, 2 and 4 through submit_host, fleet
operations (rebalance) through submit_fleet: one at a time each.

An operation module never calls the API layer; it reaches this module as
``ctx.services.admission``.
"""
import uuid as uuidlib

from agent.common.errors import Conflict, InvalidInput
from agent.controller.ops import OPERATIONS, boot


def request_id():
    return f"req-{uuidlib.uuid4()}"


class Admission:
    def __init__(self, services):
        self.services = services

    @property
    def store(self):
        return self.services.store

    def submit(self, operation, instance, supersede=False, **params):
        """Start ``operation`` (a row of OPERATIONS) on ``instance`` (name
        or uuid); returns (instance, task id).  ``supersede``: take the
        instance from the task that owns it (evacuation)."""
        op = _row(operation)
        if op.rule is None:
            raise ValueError(f"{operation} is not an instance operation")
        inst = self.store.get_instance(instance)
        if op.precheck is not None:
            params = op.precheck(self.services, inst, dict(params)) or params
        inst, task_id = self.store.admit_task(
            op.kind, {"uuid": inst["uuid"], "action": op.name, **params},
            inst["uuid"], rule=op.rule, action=op.name,
            request_id=request_id(), supersede=supersede,
            operation=op.name)
        self.services.engine.start(task_id)
        return inst, task_id

    def create(self, name, flavor, image, availability_zone=None, host=None,
               storage="local", metadata=None, group=None):
        """A new instance and its boot task; everything it names is checked
        before the instance is recorded.  ``group``: the server group it
        joins (``--hint group=NAME``) before it is scheduled."""
        boot.check_request(self.store, flavor=flavor, image=image,
                           availability_zone=availability_zone, host=host,
                           group=group)
        inst = self.store.create_instance(
            name, flavor, image, availability_zone=availability_zone,
            storage=storage, guest_metadata=metadata or {})
        if group is not None:
            self.store.add_group_member(group, inst["uuid"])
        return self.submit("create", inst["uuid"], host=host)

    def submit_host(self, operation, host, **params):
        """Start a host operation (drain); one at a time per host."""
        op = _row(operation)
        if op.rule is not None:
            raise ValueError(f"{operation} is an instance operation")
        record = self.store.get_host(host)
        if op.precheck is not None:
            params = op.precheck(self.services, record, dict(params)) \
                or params
        for task in self.store.list_tasks(unfinished=True):
            if task["kind"] == op.kind and task["params"].get("host") == host:
                raise Conflict(f"host {host}: {op.name} already in progress "
                               f"(task {task['id']})")
        return self.services.engine.submit(op.kind, {"host": host, **params})


    def submit_fleet(self, operation, **params):
        """Start a fleet operation (rebalance); one at a time."""
        op = _row(operation)
        if op.rule is not None:
            raise ValueError(f"{operation} is an instance operation")
        if op.precheck is not None:
            params = op.precheck(self.services, None, dict(params)) \
                or params
        for task in self.store.list_tasks(unfinished=True):
            if task["kind"] == op.kind:
                raise Conflict(f"{op.name} already in progress "
                               f"(task {task['id']})")
        return self.services.engine.submit(op.kind, params)


def _row(operation):
    try:
        return OPERATIONS[operation]
    except KeyError:
        raise InvalidInput(f"unknown operation {operation!r}") from None
