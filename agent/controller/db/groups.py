"""Store methods: server groups (Nova's) and their members.

Where a group's members are is read from the allocations table, not from
instances.host: a boot's claim exists before its instance has a host, and
a member in the middle of a move holds both ends.  ``group_hosts`` runs
inside a claim's transaction (agent.controller.db.placement) so that
concurrent boots into one group see each other's claims.
"""
import uuid as uuidlib

from sqlalchemy import delete, func, select

from agent.common.errors import Conflict, InvalidInput
from agent.controller.db import validate
from agent.controller.db.models import (Allocation, Instance, ServerGroup,
                                        ServerGroupMember)
from agent.controller.db.session import one
from agent.controller.scheduler.hoststate import POLICIES

RULES = ("max_server_per_host",)


def _get(s, name_or_uuid):
    return one(s, select(ServerGroup).where(
        (ServerGroup.name == name_or_uuid)
        | (ServerGroup.uuid == name_or_uuid)),
        f"server group {name_or_uuid}")


def check_rules(policy, rules):
    """The rules as stored; InvalidInput for an unknown or bad one."""
    out = {}
    for key, value in (rules or {}).items():
        if key not in RULES:
            raise InvalidInput(f"unknown server group rule {key!r} "
                               f"(rules: {', '.join(RULES)})")
        if policy != "anti-affinity":
            raise InvalidInput(f"rule {key} applies to the anti-affinity "
                               f"policy only, not {policy}")
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = 0
        if number < 1 or str(value).strip() != str(number):
            raise InvalidInput(f"rule {key} must be an integer >= 1, "
                               f"not {value!r}")
        out[key] = number
    return out


def _members(s, group_id):
    return list(s.scalars(
        select(ServerGroupMember.instance_uuid)
        .join(Instance, Instance.uuid == ServerGroupMember.instance_uuid)
        .where(ServerGroupMember.group_id == group_id,
               Instance.deleted_at.is_(None))
        .order_by(Instance.created_at, Instance.id)))


def group_hosts(s, group_id, without=None):
    """{host: how many of the group's live members hold an allocation
    there}, not counting instance ``without``."""
    stmt = (select(Allocation.host,
                   func.count(func.distinct(Allocation.instance_uuid)))
            .join(ServerGroupMember,
                  ServerGroupMember.instance_uuid == Allocation.instance_uuid)
            .where(ServerGroupMember.group_id == group_id)
            .group_by(Allocation.host))
    if without is not None:
        stmt = stmt.where(Allocation.instance_uuid != without)
    return dict(s.execute(stmt).all())


def _as_dict(s, group):
    out = group.as_dict()
    out["members"] = _members(s, group.id)
    return out


def group_of(s, instance_uuid, lock=False):
    """The ServerGroup row of an instance, or None; ``lock``: held until
    the transaction ends (claims into one group queue on it)."""
    stmt = (select(ServerGroup)
            .join(ServerGroupMember,
                  ServerGroupMember.group_id == ServerGroup.id)
            .where(ServerGroupMember.instance_uuid == instance_uuid))
    if lock:
        stmt = stmt.with_for_update()
    return s.execute(stmt).scalar_one_or_none()


class GroupsMixin:
    def create_group(self, name, policy, rules=None):
        validate.name(name, "server group name")
        if policy not in POLICIES:
            raise InvalidInput(f"unknown policy {policy!r} (policies: "
                               f"{', '.join(POLICIES)})")
        rules = check_rules(policy, rules)
        with self.db.write() as s:
            if s.scalar(select(ServerGroup.id)
                        .where(ServerGroup.name == name)):
                raise Conflict(f"server group {name} already exists")
            group = ServerGroup(uuid=str(uuidlib.uuid4()), name=name,
                                policy=policy, rules=rules)
            s.add(group)
            s.flush()
            return _as_dict(s, group)

    def get_group(self, name_or_uuid):
        with self.db.read() as s:
            return _as_dict(s, _get(s, name_or_uuid))

    def list_groups(self):
        with self.db.read() as s:
            return [_as_dict(s, g) for g in s.scalars(
                select(ServerGroup).order_by(ServerGroup.name))]

    def delete_group(self, name_or_uuid):
        """Delete a group; its members stay where they are, in no group
        (as in Nova)."""
        with self.db.write() as s:
            group = _get(s, name_or_uuid)
            s.execute(delete(ServerGroupMember).where(
                ServerGroupMember.group_id == group.id))
            s.delete(group)

    def add_group_member(self, name_or_uuid, instance_uuid):
        with self.db.write() as s:
            group = _get(s, name_or_uuid)
            old = group_of(s, instance_uuid)
            if old is not None and old.id != group.id:
                raise Conflict(f"instance {instance_uuid} is already in "
                               f"server group {old.name}")
            if old is None:
                s.add(ServerGroupMember(group_id=group.id,
                                        instance_uuid=instance_uuid))
            return _as_dict(s, group)

    def instance_group(self, instance_uuid):
        """The group record of an instance (with ``hosts``: where its
        OTHER members are, see group_hosts), or None."""
        with self.db.read() as s:
            group = group_of(s, instance_uuid)
            if group is None:
                return None
            out = _as_dict(s, group)
            out["hosts"] = group_hosts(s, group.id, without=instance_uuid)
            return out

    def group_placement(self, name_or_uuid):
        """A group record with ``hosts``: where all its members are (for
        a new member, e.g. a boot's dry run)."""
        with self.db.read() as s:
            group = _get(s, name_or_uuid)
            out = _as_dict(s, group)
            out["hosts"] = group_hosts(s, group.id)
            return out

    def group_memberships(self):
        """{instance uuid: group name} of every member (the rebalance
        plan's view)."""
        with self.db.read() as s:
            return dict(s.execute(
                select(ServerGroupMember.instance_uuid, ServerGroup.name)
                .join(ServerGroup,
                      ServerGroup.id == ServerGroupMember.group_id)).all())
