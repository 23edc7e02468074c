"""The controller's tables (SQLAlchemy 2 typed ORM).

Times are naive UTC.  Hosts are referred to by name elsewhere (instances,
allocations, migrations); instances by uuid.  ``as_dict`` gives the
JSON-ready dict the store hands out.
"""
import datetime

from sqlalchemy import (JSON, BigInteger, DateTime, ForeignKey, Index,
                        Integer, MetaData, String, Text, UniqueConstraint,
                        text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAME = 63          # names: hosts, aggregates, flavors, images, instances
UUID = 36

NAMING = {"ix": "ix_%(column_0_label)s",
          "uq": "uq_%(table_name)s_%(column_0_name)s",
          "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
          "pk": "pk_%(table_name)s"}


def utcnow():
    """Now, naive UTC (what every time column holds)."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def jsonable(value):
    if isinstance(value, datetime.datetime):
        return value.isoformat(timespec="seconds") + "Z"
    return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)

    def as_dict(self):
        """Column values, times as ISO-8601 UTC strings."""
        return {c.key: jsonable(getattr(self, c.key))
                for c in self.__mapper__.column_attrs}


class Host(Base):
    __tablename__ = "hosts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    address: Mapped[str] = mapped_column(String(255))
    migration_address: Mapped[str | None] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(8), default="down")
    last_seen: Mapped[datetime.datetime | None] = mapped_column(DateTime)
    # The first line of the last failed poll, until the host answers.
    down_reason: Mapped[str | None] = mapped_column(String(500))
    # Fencing (agent.controller.fencing): "up" | "down" | "fenced" above;
    # the operator's ``host set --down``; when its fence agent last said
    # off; its fence method (options hold secrets: never shown); why its
    # last fence failed.
    forced_down: Mapped[bool] = mapped_column(default=False)
    fenced_at: Mapped[datetime.datetime | None] = mapped_column(DateTime)
    fence_agent: Mapped[str | None] = mapped_column(String(1024))
    fence_options: Mapped[dict | None] = mapped_column(JSON, default=dict)
    fence_error: Mapped[str | None] = mapped_column(String(500))
    vcpus: Mapped[int] = mapped_column(default=0)
    memory_mb: Mapped[int] = mapped_column(default=0)
    disk_gb: Mapped[int] = mapped_column(default=0)
    vcpus_used: Mapped[int] = mapped_column(default=0)
    memory_mb_used: Mapped[int] = mapped_column(default=0)
    disk_gb_used: Mapped[int] = mapped_column(default=0)
    hypervisor_type: Mapped[str | None] = mapped_column(String(32))
    libvirt_version: Mapped[str | None] = mapped_column(String(32))
    qemu_version: Mapped[str | None] = mapped_column(String(32))
    cpu_model: Mapped[str | None] = mapped_column(String(255))
    instances_path: Mapped[str | None] = mapped_column(String(1024))
    shared_instances_path: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime,
                                                          default=utcnow)


class Aggregate(Base):
    __tablename__ = "aggregates"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime,
                                                          default=utcnow)
    metadata_items: Mapped[list["AggregateMetadata"]] = relationship(
        cascade="all, delete-orphan", lazy="selectin")
    hosts: Mapped[list[Host]] = relationship(
        secondary="aggregate_hosts", lazy="selectin", order_by=Host.name)

    @property
    def meta(self):
        return {m.key: m.value for m in self.metadata_items}

    def as_dict(self):
        meta = self.meta
        return {"id": self.id, "name": self.name,
                "availability_zone": meta.get("availability_zone"),
                "hosts": [h.name for h in self.hosts], "metadata": meta,
                "created_at": jsonable(self.created_at)}


class AggregateMetadata(Base):
    __tablename__ = "aggregate_metadata"
    __table_args__ = (UniqueConstraint("aggregate_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    aggregate_id: Mapped[int] = mapped_column(
        ForeignKey("aggregates.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    value: Mapped[str] = mapped_column(String(255))


class AggregateHost(Base):
    __tablename__ = "aggregate_hosts"
    aggregate_id: Mapped[int] = mapped_column(
        ForeignKey("aggregates.id", ondelete="CASCADE"), primary_key=True)
    host_id: Mapped[int] = mapped_column(
        ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True)


class Flavor(Base):
    __tablename__ = "flavors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    vcpus: Mapped[int]
    ram_mb: Mapped[int]
    disk_gb: Mapped[int]
    properties: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime,
                                                          default=utcnow)


class Image(Base):
    __tablename__ = "images"
    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[str] = mapped_column(String(UUID), unique=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    path: Mapped[str] = mapped_column(String(1024))
    format: Mapped[str] = mapped_column(String(16))
    virtual_size: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(BigInteger)
    checksum: Mapped[str | None] = mapped_column(String(128))
    # "saving" while a snapshot is copied in, "active" once checked.
    status: Mapped[str] = mapped_column(String(16), default="active",
                                        server_default="active")
    # The instance a snapshot was taken of (None: imported).
    instance_uuid: Mapped[str | None] = mapped_column(String(UUID))
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime,
                                                          default=utcnow)


class Instance(Base):
    __tablename__ = "instances"
    __table_args__ = (
        # A name is unique among instances that are not deleted.
        Index("ix_instances_live_name", "name", unique=True,
              sqlite_where=text("deleted_at IS NULL"),
              postgresql_where=text("deleted_at IS NULL")),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[str] = mapped_column(String(UUID), unique=True)
    name: Mapped[str] = mapped_column(String(NAME))
    flavor_id: Mapped[int | None] = mapped_column(
        ForeignKey("flavors.id", ondelete="SET NULL"))
    flavor: Mapped[dict] = mapped_column(JSON)
    old_flavor: Mapped[dict | None] = mapped_column(JSON)
    new_flavor: Mapped[dict | None] = mapped_column(JSON)
    image_uuid: Mapped[str | None] = mapped_column(String(UUID))
    # The image holding the disk of a shelved instance (on no host).
    shelved_image_uuid: Mapped[str | None] = mapped_column(String(UUID))
    host: Mapped[str | None] = mapped_column(String(NAME), index=True)
    availability_zone: Mapped[str | None] = mapped_column(String(NAME))
    # The zone the user asked for (moves stay in it), None: any.
    requested_availability_zone: Mapped[str | None] = mapped_column(
        String(NAME))
    vm_state: Mapped[str] = mapped_column(String(32))
    task_state: Mapped[str | None] = mapped_column(String(64))
    power_state: Mapped[int] = mapped_column(default=0)
    mac: Mapped[str | None] = mapped_column(String(17), unique=True)
    ip: Mapped[str | None] = mapped_column(String(45), unique=True)
    storage: Mapped[str] = mapped_column(String(8), default="local")
    # Passed to the guest as SMBIOS OEM strings (drover.KEY=VALUE).
    guest_metadata: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    # The task that owns the instance (a fencing token): see
    # agent.controller.db.instances.update_instance.
    task_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime,
                                                          default=utcnow)
    updated_at: Mapped[datetime.datetime] = mapped_column(
        DateTime, default=utcnow, onupdate=utcnow)
    launched_at: Mapped[datetime.datetime | None] = mapped_column(DateTime)
    deleted_at: Mapped[datetime.datetime | None] = mapped_column(DateTime)


class Allocation(Base):
    __tablename__ = "allocations"
    __table_args__ = (UniqueConstraint("consumer", "host"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    host: Mapped[str] = mapped_column(
        ForeignKey("hosts.name", ondelete="RESTRICT"), index=True)
    instance_uuid: Mapped[str] = mapped_column(String(UUID), index=True)
    # The instance's uuid, or a migration's uuid while it holds the other
    # end of a move.
    consumer: Mapped[str] = mapped_column(String(UUID))
    vcpus: Mapped[int]
    ram_mb: Mapped[int]
    disk_gb: Mapped[int]
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime,
                                                          default=utcnow)


class HostCleanup(Base):
    """What a host that could not be reached must remove when it returns
    (e.g. the domain and directory of an instance deleted meanwhile)."""
    __tablename__ = "host_cleanups"
    __table_args__ = (UniqueConstraint("host", "instance_uuid"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    host: Mapped[str] = mapped_column(String(NAME), index=True)
    instance_uuid: Mapped[str] = mapped_column(String(UUID))
    storage: Mapped[str] = mapped_column(String(8))
    # Of "domain" (destroy and undefine) and "files" (the instance
    # directory).
    remove: Mapped[list] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime,
                                                          default=utcnow)


class Migration(Base):
    __tablename__ = "migrations"
    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[str] = mapped_column(String(UUID), unique=True)
    instance_uuid: Mapped[str] = mapped_column(String(UUID), index=True)
    type: Mapped[str] = mapped_column(String(16))
    source_host: Mapped[str | None] = mapped_column(String(NAME))
    dest_host: Mapped[str | None] = mapped_column(String(NAME))
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[dict | None] = mapped_column(JSON)
    old_flavor: Mapped[dict | None] = mapped_column(JSON)
    new_flavor: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    # A live migration's prediction when it started (agent.controller
    # .prediction), None when none was made.
    prediction: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime,
                                                          default=utcnow)
    updated_at: Mapped[datetime.datetime] = mapped_column(
        DateTime, default=utcnow, onupdate=utcnow)


class InstanceAction(Base):
    __tablename__ = "instance_actions"
    id: Mapped[int] = mapped_column(primary_key=True)
    instance_uuid: Mapped[str] = mapped_column(String(UUID), index=True)
    action: Mapped[str] = mapped_column(String(32))
    request_id: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(Text)
    start_time: Mapped[datetime.datetime] = mapped_column(DateTime,
                                                          default=utcnow)
    finish_time: Mapped[datetime.datetime | None] = mapped_column(DateTime)


class InstanceActionEvent(Base):
    __tablename__ = "instance_action_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    action_id: Mapped[int] = mapped_column(
        ForeignKey("instance_actions.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(64))
    start_time: Mapped[datetime.datetime] = mapped_column(DateTime,
                                                          default=utcnow)
    finish_time: Mapped[datetime.datetime | None] = mapped_column(DateTime)
    result: Mapped[str | None] = mapped_column(String(16))
    details: Mapped[str | None] = mapped_column(Text)


class Task(Base):
    __tablename__ = "tasks"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    instance_uuid: Mapped[str | None] = mapped_column(String(UUID),
                                                      index=True)
    params: Mapped[dict] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="running")
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    superseded_by: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    progress: Mapped[str | None] = mapped_column(Text)
    # The leader term of the task's last write (None: SQLite, no leader).
    term: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime,
                                                          default=utcnow)
    updated_at: Mapped[datetime.datetime] = mapped_column(
        DateTime, default=utcnow, onupdate=utcnow)


class Leader(Base):
    """The one row (id 1) of the leader lease (agent.controller.leader)."""
    __tablename__ = "leader"
    id: Mapped[int] = mapped_column(primary_key=True)
    term: Mapped[int] = mapped_column(BigInteger)
    holder: Mapped[str | None] = mapped_column(String(255))
    address: Mapped[str | None] = mapped_column(String(1024))
    backend_pid: Mapped[int | None] = mapped_column(Integer)
    since: Mapped[datetime.datetime | None] = mapped_column(DateTime)


class TaskStep(Base):
    __tablename__ = "task_steps"
    __table_args__ = (UniqueConstraint("task_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column("step_index", Integer)
    name: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(8))
    data: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime.datetime] = mapped_column(DateTime,
                                                          default=utcnow)
    finished_at: Mapped[datetime.datetime | None] = mapped_column(DateTime)


class ServerGroup(Base):
    """Nova's server group: its members' placement policy (affinity,
    anti-affinity and their soft forms) and rules (max_server_per_host,
    anti-affinity only)."""
    __tablename__ = "server_groups"
    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[str] = mapped_column(String(UUID), unique=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    policy: Mapped[str] = mapped_column(String(32))
    rules: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime,
                                                          default=utcnow)


class ServerGroupMember(Base):
    """An instance is in at most one group (as in Nova)."""
    __tablename__ = "server_group_members"
    group_id: Mapped[int] = mapped_column(
        ForeignKey("server_groups.id", ondelete="CASCADE"), index=True)
    instance_uuid: Mapped[str] = mapped_column(String(UUID),
                                               primary_key=True)


class HostEvent(Base):
    """What automatic recovery did to a host, and why (``host event
    list``): failed, fence attempts and their reasons, recovered."""
    __tablename__ = "host_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    host: Mapped[str] = mapped_column(String(NAME), index=True)
    event: Mapped[str] = mapped_column(String(64))
    result: Mapped[str] = mapped_column(String(16))
    details: Mapped[str | None] = mapped_column(Text)
    task_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime,
                                                          default=utcnow)
