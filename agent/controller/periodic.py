"""Periodic work of the controller for cold moves.

- Auto-confirm: a cold migration or resize left in VERIFY_RESIZE longer
  than [compute] resize_confirm_window seconds (0: never) is confirmed.
- Leftovers: a failed move whose copy could not be removed from an
  unreachable destination (its record's progress names
  ``leftover_host``) has it removed once that host's agent answers,
  unless the instance lives there now.
"""
import datetime
import logging
import threading

from agent.common.errors import Conflict, DroverError, NotFound
from agent.conf import CONF
from agent.controller import states
from agent.controller.db.models import utcnow

LOG = logging.getLogger(__name__)
INTERVAL = 5.0
MOVE_TYPES = ("migration", "resize")


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


def clean_leftovers(svc):
    for mig in svc.store.list_migrations(status=states.MIG_ERROR):
        progress = mig.get("progress") or {}
        host = progress.get("leftover_host")
        if not host or mig["type"] not in MOVE_TYPES:
            continue
        try:
            inst = svc.store.get_instance(mig["instance_uuid"],
                                          deleted=True)
            busy = svc.store.list_migrations(instance_uuid=inst["uuid"],
                                             host=host, in_progress=True)
            if inst["host"] != host and not busy:
                svc.hosts.call(host, "instance.cleanup", uuid=inst["uuid"],
                               storage=progress["leftover_storage"])
                LOG.info("removed %s's leftover copy on %s", inst["name"],
                         host)
            progress = {k: v for k, v in progress.items()
                        if not k.startswith("leftover_")}
            svc.store.update_migration(mig["uuid"], progress=progress)
        except DroverError as err:
            LOG.debug("leftover of migration %s on %s: %s", mig["id"],
                      host, err)


def tick(svc):
    auto_confirm(svc)
    clean_leftovers(svc)


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
