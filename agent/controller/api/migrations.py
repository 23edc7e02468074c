"""API: moving instances (cold migration, resize, live migration) and the
migration records operators follow them by."""
from agent.common.errors import InvalidInput, NotFound
from agent.controller.api.servers import operation


def server_migrate(svc, name, host=None, live=False, block=None):
    if live:
        return operation("live-migrate")(svc, name, host=host, block=block)
    if block:
        raise InvalidInput("--block-migration goes with --live-migration")
    return operation("migrate")(svc, name, host=host)


def _row(m):
    percent = (m.get("progress") or {}).get("percent")
    return {"Id": m["id"], "Type": m["type"], "Source Host": m["source_host"],
            "Dest Host": m["dest_host"], "Status": m["status"],
            "Progress": None if percent is None else f"{percent:.0f}%",
            "Created At": m["created_at"], "Updated At": m["updated_at"]}


def migration_list(svc, name=None, host=None):
    uuid = None
    if name is not None:
        uuid = svc.store.get_instance(name, deleted=True)["uuid"]
    return [_row(m) for m in svc.store.list_migrations(instance_uuid=uuid,
                                                       host=host)]


def migration_show(svc, name, id=None):
    inst = svc.store.get_instance(name, deleted=True)
    if id is not None:
        mig = svc.store.get_migration(int(id) if str(id).isdigit() else id)
        if mig["instance_uuid"] != inst["uuid"]:
            raise NotFound(f"migration {id} is not {inst['name']}'s")
        return mig
    migs = svc.store.list_migrations(instance_uuid=inst["uuid"])
    if not migs:
        raise NotFound(f"instance {inst['name']} has no migrations")
    return migs[0]


METHODS = {
    "server.migrate": server_migrate,
    "server.resize": operation("resize"),
    "server.resize_confirm": operation("resize-confirm"),
    "server.resize_revert": operation("resize-revert"),
    "migration.list": migration_list,
    "migration.show": migration_show,
}
