"""Periodic work of the controller for cold moves and rescues.

- Auto-confirm: a cold migration or resize left in VERIFY_RESIZE longer
  than [compute] resize_confirm_window seconds (0: never) is confirmed.
- Rollbacks: a failed move whose task could not finish its rollback (a
  host was unreachable; its record says the rollback is pending) has it
  finished once both hosts answer (cold_migrate.finish_rollback).  A
  copy merely left on an unreachable destination is the host clean-up
  table's (agent.controller.host_cleanups).
- Reverts: a revert that failed past its point of no return leaves its
  migration "reverting"; it is run again once both hosts are up: at once
  the first time, then after a wait that doubles with each failed retry
  (REVERT_RETRY_BASE_S up to REVERT_RETRY_MAX_S), REVERT_RETRY_LIMIT
  times at most; then it is the operator's (server resize revert).
- Auto-unrescue: an instance left in RESCUE longer than [compute]
  rescue_timeout seconds (0: never) since its rescue ended is unrescued.
"""
import datetime
import logging
import threading

from agent.common.errors import Conflict, DroverError, NotFound
from agent.conf import CONF
from agent.controller import states
from agent.controller.db.models import utcnow
from agent.controller.ops import cold_migrate, rescue

LOG = logging.getLogger(__name__)
INTERVAL = 5.0
MOVE_TYPES = ("migration", "resize")
REVERT_RETRY_BASE_S = 10
REVERT_RETRY_MAX_S = 3600
REVERT_RETRY_LIMIT = 10


def _time(value):
    """A record's time (ISO-8601 UTC string) as a naive UTC datetime."""
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value.rstrip("Z"))
    return value


def due_for_confirm(migration, now, window):
    """True if ``migration`` waited for confirmation over ``window``
    seconds (0: auto-confirm off)."""
    return (window > 0 and migration["type"] in MOVE_TYPES
            and migration["status"] == states.MIG_FINISHED
            and now - _time(migration["updated_at"])
            >= datetime.timedelta(seconds=window))


def auto_confirm(svc, now=None):
    now = now or utcnow()
    window = CONF.compute.resize_confirm_window
    for mig in svc.store.list_migrations(status=states.MIG_FINISHED):
        if not due_for_confirm(mig, now, window):
            continue
        try:
            inst = svc.store.get_instance(mig["instance_uuid"])
            if inst["vm_state"] != states.RESIZED or inst["task_state"]:
                continue
            LOG.info("auto-confirming the move of %s", inst["name"])
            svc.admission.submit("resize-confirm", inst["uuid"])
        except (Conflict, NotFound) as err:
            LOG.info("auto-confirm of migration %s: %s", mig["id"], err)


def finish_rollbacks(svc):
    for mig in svc.store.list_migrations(status=states.MIG_ERROR):
        if mig["type"] not in MOVE_TYPES or \
                not cold_migrate.rollback_pending(mig):
            continue
        try:
            cold_migrate.finish_rollback(svc, mig)
        except DroverError as err:      # HostUnreachable too: next tick
            LOG.info("rollback of migration %s not finished yet: %s",
                     mig["id"], err)


def retry_due(failed_retries, last_failed_at, now):
    """True if a revert whose periodic retries failed ``failed_retries``
    times, the last at ``last_failed_at``, may be tried again ``now``."""
    if failed_retries >= REVERT_RETRY_LIMIT:
        return False
    if failed_retries == 0:
        return True
    wait = min(REVERT_RETRY_MAX_S,
               REVERT_RETRY_BASE_S * 2 ** (failed_retries - 1))
    return now - _time(last_failed_at) >= datetime.timedelta(seconds=wait)


def _failed_retries(store, instance_uuid, since):
    return [t for t in store.list_tasks(instance_uuid=instance_uuid)
            if t["kind"] == "resize_revert" and t["state"] == "failed"
            and t["params"].get("retry") and t["created_at"] >= since]


def retry_reverts(svc, now=None):
    now = now or utcnow()
    for mig in svc.store.list_migrations(status=states.MIG_REVERTING):
        try:
            inst = svc.store.get_instance(mig["instance_uuid"])
            hosts = [svc.store.get_host(h)["state"]
                     for h in (mig["source_host"], mig["dest_host"])]
            if inst["vm_state"] != states.RESIZED or inst["task_state"] \
                    or any(state != "up" for state in hosts):
                continue
            failed = _failed_retries(svc.store, inst["uuid"],
                                     mig["created_at"])
            if not retry_due(len(failed), failed[-1]["updated_at"]
                             if failed else None, now):
                continue
            LOG.info("running the revert of %s again (retry %d)",
                     inst["name"], len(failed) + 1)
            svc.admission.submit("resize-revert", inst["uuid"], retry=True)
        except (Conflict, NotFound) as err:
            LOG.info("revert of migration %s: %s", mig["id"], err)


def due_for_unrescue(rescued_at, now, timeout):
    """True if an instance rescued at ``rescued_at`` has been in RESCUE
    for ``timeout`` seconds (0: never)."""
    return (timeout > 0 and rescued_at is not None
            and now - _time(rescued_at) >= datetime.timedelta(
                seconds=timeout))


def auto_unrescue(svc, now=None):
    timeout = CONF.compute.rescue_timeout
    if not timeout:
        return
    now = now or utcnow()
    for inst in svc.store.list_instances(vm_state=states.RESCUED):
        if inst["task_state"]:
            continue
        task = rescue.last_rescue(svc.store, inst["uuid"])
        if not due_for_unrescue(task and task["updated_at"], now, timeout):
            continue
        LOG.info("rescue_timeout: unrescuing %s", inst["name"])
        try:
            svc.admission.submit("unrescue", inst["uuid"])
        except (Conflict, NotFound) as err:
            LOG.info("auto-unrescue of %s: %s", inst["name"], err)


def tick(svc):
    auto_confirm(svc)
    auto_unrescue(svc)
    finish_rollbacks(svc)
    retry_reverts(svc)


def start(svc, interval=INTERVAL):
    """Run ``tick`` every ``interval`` seconds in a daemon thread."""
    def loop():
        while True:
            try:
                tick(svc)
            except Exception:       # must outlive any one failure
                LOG.exception("periodic tasks failed")
            threading.Event().wait(interval)
    thread = threading.Thread(target=loop, name="periodic", daemon=True)
    thread.start()
    return thread
