"""Initial schema.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

NAME, UUID = 63, 36


def _id(table):
    return (sa.Column("id", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")))


def _time(name, nullable=False):
    return sa.Column(name, sa.DateTime(), nullable=nullable)


def _str(name, length, nullable=True):
    return sa.Column(name, sa.String(length=length), nullable=nullable)


def _int(name, big=False):
    kind = sa.BigInteger() if big else sa.Integer()
    return sa.Column(name, kind, nullable=False)


def _text(name):
    return sa.Column(name, sa.Text(), nullable=True)


def _json(name, nullable=True):
    return sa.Column(name, sa.JSON(), nullable=nullable)


def _unique(table, *cols):
    return sa.UniqueConstraint(*cols, name=op.f(f"uq_{table}_{cols[0]}"))


def _fk(table, col, ref, ondelete):
    target = ref.split(".")[0]
    return sa.ForeignKeyConstraint(
        [col], [ref], name=op.f(f"fk_{table}_{col}_{target}"),
        ondelete=ondelete)


def _index(table, col):
    op.create_index(op.f(f"ix_{table}_{col}"), table, [col])


def upgrade():
    op.create_table(
        "hosts", *_id("hosts"),
        _str("name", NAME, False), _str("address", 255, False),
        _str("migration_address", 255),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        _str("disabled_reason", 255), _str("state", 8, False),
        _time("last_seen", True),
        _int("vcpus"), _int("memory_mb"), _int("disk_gb"),
        _int("vcpus_used"), _int("memory_mb_used"), _int("disk_gb_used"),
        _str("hypervisor_type", 32), _str("libvirt_version", 32),
        _str("qemu_version", 32), _str("cpu_model", 255),
        _str("instances_path", 1024), _str("shared_instances_path", 1024),
        _time("created_at"),
        _unique("hosts", "name"))
    op.create_table(
        "aggregates", *_id("aggregates"),
        _str("name", NAME, False), _time("created_at"),
        _unique("aggregates", "name"))
    op.create_table(
        "aggregate_metadata", *_id("aggregate_metadata"),
        _int("aggregate_id"), _str("key", 255, False),
        _str("value", 255, False),
        _fk("aggregate_metadata", "aggregate_id", "aggregates.id", "CASCADE"),
        _unique("aggregate_metadata", "aggregate_id", "key"))
    op.create_table(
        "aggregate_hosts",
        _int("aggregate_id"), _int("host_id"),
        _fk("aggregate_hosts", "aggregate_id", "aggregates.id", "CASCADE"),
        _fk("aggregate_hosts", "host_id", "hosts.id", "CASCADE"),
        sa.PrimaryKeyConstraint("aggregate_id", "host_id",
                                name=op.f("pk_aggregate_hosts")))
    op.create_table(
        "flavors", *_id("flavors"),
        _str("name", NAME, False), _int("vcpus"), _int("ram_mb"),
        _int("disk_gb"), _json("properties", False), _time("created_at"),
        _unique("flavors", "name"))
    op.create_table(
        "images", *_id("images"),
        _str("uuid", UUID, False), _str("name", NAME, False),
        _str("path", 1024, False), _str("format", 16, False),
        _int("virtual_size", big=True), _int("size", big=True),
        _str("checksum", 128), _time("created_at"),
        _unique("images", "name"), _unique("images", "uuid"))
    op.create_table(
        "instances", *_id("instances"),
        _str("uuid", UUID, False), _str("name", NAME, False),
        sa.Column("flavor_id", sa.Integer(), nullable=True),
        _json("flavor", False), _json("old_flavor"), _json("new_flavor"),
        _str("image_uuid", UUID), _str("host", NAME),
        _str("availability_zone", NAME),
        _str("requested_availability_zone", NAME),
        _str("vm_state", 32, False), _str("task_state", 64),
        _int("power_state"), _str("mac", 17), _str("ip", 45),
        _str("storage", 8, False), _json("guest_metadata"),
        _text("error"), _time("created_at"), _time("updated_at"),
        _time("launched_at", True), _time("deleted_at", True),
        _fk("instances", "flavor_id", "flavors.id", "SET NULL"),
        _unique("instances", "ip"), _unique("instances", "mac"),
        _unique("instances", "uuid"))
    _index("instances", "host")
    op.create_index("ix_instances_live_name", "instances", ["name"],
                    unique=True,
                    sqlite_where=sa.text("deleted_at IS NULL"),
                    postgresql_where=sa.text("deleted_at IS NULL"))
    op.create_table(
        "allocations", *_id("allocations"),
        _str("host", NAME, False), _str("instance_uuid", UUID, False),
        _str("consumer", UUID, False),
        _int("vcpus"), _int("ram_mb"), _int("disk_gb"), _time("created_at"),
        _fk("allocations", "host", "hosts.name", "RESTRICT"),
        _unique("allocations", "consumer", "host"))
    _index("allocations", "host")
    _index("allocations", "instance_uuid")
    op.create_table(
        "migrations", *_id("migrations"),
        _str("uuid", UUID, False), _str("instance_uuid", UUID, False),
        _str("type", 16, False), _str("source_host", NAME),
        _str("dest_host", NAME), _str("status", 16, False),
        _json("progress"), _json("old_flavor"), _json("new_flavor"),
        _text("error"), _time("created_at"), _time("updated_at"),
        _unique("migrations", "uuid"))
    _index("migrations", "instance_uuid")
    op.create_table(
        "instance_actions", *_id("instance_actions"),
        _str("instance_uuid", UUID, False), _str("action", 32, False),
        _str("request_id", 64), _text("message"),
        _time("start_time"), _time("finish_time", True))
    _index("instance_actions", "instance_uuid")
    op.create_table(
        "instance_action_events", *_id("instance_action_events"),
        _int("action_id"), _str("event", 64, False),
        _time("start_time"), _time("finish_time", True),
        _str("result", 16), _text("details"),
        _fk("instance_action_events", "action_id", "instance_actions.id",
            "CASCADE"))
    _index("instance_action_events", "action_id")
    op.create_table(
        "tasks", *_id("tasks"),
        _str("kind", 32, False), _str("instance_uuid", UUID),
        _json("params", False), _str("state", 8, False),
        _text("error"), _text("progress"),
        _time("created_at"), _time("updated_at"))
    _index("tasks", "instance_uuid")
    op.create_table(
        "task_steps", *_id("task_steps"),
        _int("task_id"), _int("step_index"), _str("name", 64, False),
        _str("state", 8, False), _json("data"), _text("error"),
        _time("started_at"), _time("finished_at", True),
        _fk("task_steps", "task_id", "tasks.id", "CASCADE"),
        _unique("task_steps", "task_id", "name"))


def downgrade():
    for table in ("task_steps", "tasks", "instance_action_events",
                  "instance_actions", "migrations", "allocations",
                  "instances", "images", "flavors", "aggregate_hosts",
                  "aggregate_metadata", "aggregates", "hosts"):
        op.drop_table(table)
