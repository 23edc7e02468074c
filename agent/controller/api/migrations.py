"""API: moving instances (cold migration, resize, live migration) and the
migration records operators follow them by."""
from agent.common.errors import Conflict, InvalidInput, NotFound
from agent.controller import live_checks, move_prediction, states
from agent.controller.api.servers import operation


def server_migrate(svc, name, host=None, live=False, block=None,
                   dry_run=False, predict=False):
    if (dry_run or predict) and not live:
        raise InvalidInput("--dry-run and --predict go with "
                           "--live-migration")
    if dry_run:
        return predict_live(svc, name, host=host, block=block)
    if live:
        return operation("live-migrate")(svc, name, host=host, block=block,
                                         predict=bool(predict))
    if block:
        raise InvalidInput("--block-migration goes with --live-migration")
    return operation("migrate")(svc, name, host=host)


def predict_live(svc, name, host=None, block=None):
    """What ``server migrate --live-migration`` would do now: the
    destination (given, or the scheduler's choice) and the prediction.
    Changes nothing."""
    inst = svc.store.get_instance(name)
    live_checks.check_instance(inst)
    if host is None:
        host = move_prediction.destination(svc.store, inst)
        if host is None:
            raise Conflict(f"no host can take {inst['name']} now (see "
                           "server create --dry-run)")
    else:
        live_checks.check_hosts(svc.store.get_host(inst["host"]),
                                svc.store.get_host(host))
    return move_prediction.row(
        inst, move_prediction.predict_move(svc, inst, host, block=block))


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
        return _with_eta(mig)
    migs = svc.store.list_migrations(instance_uuid=inst["uuid"])
    if not migs:
        raise NotFound(f"instance {inst['name']} has no migrations")
    return _with_eta(migs[0])


def _with_eta(mig):
    """The record, with ``eta_s`` while it runs: from the live transfer
    and dirty rates (the source's latest figures), and the predicted
    duration left when it started with a prediction."""
    if not states.migration_in_progress(mig["status"]):
        return mig
    progress = mig.get("progress") or {}
    predicted = (mig.get("prediction") or {}).get("duration_s")
    elapsed = (progress.get("elapsed_ms") or 0) / 1000
    return dict(mig, eta_s=progress.get("eta"),
                predicted_eta_s=None if predicted is None
                else round(max(predicted - elapsed, 0.0), 1))


METHODS = {
    "server.migrate": server_migrate,
    "server.resize": operation("resize"),
    "server.resize_confirm": operation("resize-confirm"),
    "server.resize_revert": operation("resize-revert"),
    "migration.list": migration_list,
    "migration.show": migration_show,
}
