"""Clean-ups a host owes: what could not be removed on it while it was
down (an instance deleted meanwhile: its domain and its directory), done
by the poller when the host answers again, before it counts as up.

Argued from the two promises:

- Only the store's word decides.  A clean-up removes the domain and the
  directory of an instance the store says is deleted (or no longer
  knows).  An instance the store says lives on that host is never
  touched: its record is dropped.  One that lives elsewhere (moved
  meanwhile) loses only its stale domain on that host, never files: on
  shared storage they are the live disk, on local storage they may hold
  the only copy of its data.  An instance still in a task (its delete
  has not finished) is left for a later poll.
- Two kinds of files of an instance that does not live on the host may
  go all the same, because they cannot hold the only copy of its data:
  those of a boot that never finished (the instance has no host, is in
  ERROR and was never launched: its disk is a fresh overlay nobody used),
  and a move's copy ("copy"): the newest migration of the instance that
  names the host is a failed or cancelled one *to* it (the instance never
  lived there since) or a completed live migration *from* it (the
  source's old directory, that the migration's finish could not remove),
  storage is local
  (a shared directory is the instance's own disk), the instance's own
  host answers that it holds the domain and the disk (live.disk_facts),
  and the host keeps no domain of it that is not removed with it (a
  guest there would be using the copy).  Until all that is seen the
  record waits.
- Directories are named by instance uuid and a uuid is never reused, so
  removing a deleted instance's directory on shared storage removes
  nothing of another instance; if another host or the operator removed
  it already, removing it again does nothing.  It is removed from the
  returning host, after its domain is destroyed there, so no guest is
  left writing to a directory that is gone.
- Every primitive can run twice (destroy, undefine and cleanup of what
  is already gone do nothing), and a record is forgotten only after its
  removal succeeded: a poller or controller that dies half way does it
  again.
"""
import logging

from agent.common.errors import DroverError, NotFound
from agent.controller import states
from agent.transport.errors import HostUnreachable

LOG = logging.getLogger(__name__)

WAIT = None     # plan: nothing yet, keep the record for a later poll
COPY = "copy"   # plan: the files, once the instance's host holds its disk
FAILED_MOVES = frozenset({states.MIG_ERROR, states.MIG_FAILED,
                          states.MIG_CANCELLED})


def plan(cleanup, instance, migrations=()):
    """What to remove now for ``cleanup`` (a store record) given the
    store's ``instance`` (None: no record of it) and its ``migrations``
    (newest first): a tuple of "domain", "files", COPY (possibly empty:
    drop the record, touch nothing), or WAIT."""
    wanted = tuple(r for r in ("domain", "files") if r in cleanup["remove"])
    if instance is None or instance["vm_state"] == states.DELETED:
        return wanted
    if instance["task_state"] is not None:
        return WAIT
    if instance["host"] == cleanup["host"]:
        return ()
    if instance["host"] is None and instance["vm_state"] == states.ERROR \
            and instance.get("launched_at") is None:
        return wanted               # a boot that never finished
    domain = tuple(r for r in wanted if r == "domain")
    if "files" in wanted and instance["host"] is not None and \
            _stale_copy_on(migrations, cleanup["host"]) and \
            instance["storage"] == "local":
        return domain + (COPY,)
    return domain


def _stale_copy_on(migrations, host):
    """True if the newest of ``migrations`` that names ``host`` is a
    failed move to it or a completed move from it."""
    for mig in migrations:
        if mig["dest_host"] == host:
            return mig["status"] in FAILED_MOVES
        if mig["source_host"] == host:
            return mig["status"] == states.MIG_COMPLETED
    return False


def _instance(store, uuid):
    try:
        return store.get_instance(uuid, deleted=True)
    except NotFound:
        return None


def _remove(call, cleanup, what, instance):
    """Remove ``what``; False if a COPY must wait (nothing removed of
    it)."""
    host, uuid = cleanup["host"], cleanup["instance_uuid"]
    if "domain" in what:
        call(host, "instance.destroy", uuid=uuid)
        call(host, "instance.undefine", uuid=uuid)
    if COPY in what and not _copy_removable(call, cleanup, instance,
                                            "domain" in what):
        return False
    if "files" in what or COPY in what:
        call(host, "instance.cleanup", uuid=uuid,
             storage=cleanup["storage"])
    return True


def _copy_removable(call, cleanup, instance, domain_removed):
    """The instance's own host holds its domain and disk, and the
    clean-up's host keeps no domain of it."""
    uuid = instance["uuid"]
    try:
        call(instance["host"], "live.disk_facts", uuid=uuid,
             storage=instance["storage"])
    except (HostUnreachable, DroverError) as err:
        LOG.info("host %s: the copy of %s waits: its host %s does not "
                 "show its disk: %s", cleanup["host"], uuid,
                 instance["host"], err)
        return False
    if domain_removed:
        return True
    try:
        call(cleanup["host"], "instance.info", uuid=uuid)
    except NotFound:
        return True
    LOG.info("host %s: the copy of %s waits: a domain of it is there",
             cleanup["host"], uuid)
    return False


def run(store, call, host):
    """Do the clean-ups ``host`` owes, through ``call(host, method,
    **params)``.  Returns the ones that failed or must wait, as one line
    each (empty: all done).  HostUnreachable is raised: the host is not
    back after all."""
    pending = []
    for cleanup in store.list_cleanups(host=host):
        uuid = cleanup["instance_uuid"]
        instance = _instance(store, uuid)
        migrations = () if instance is None else store.list_migrations(
            instance_uuid=uuid)
        what = plan(cleanup, instance, migrations)
        if what is WAIT:
            pending.append(f"instance {uuid} is busy")
            continue
        try:
            if not _remove(call, cleanup, what, instance):
                continue    # a copy waits; nothing there keeps the host down
        except HostUnreachable:
            raise
        except DroverError as err:
            LOG.warning("host %s: clean-up of instance %s failed: %s",
                        host, uuid, err)
            pending.append(f"instance {uuid}: {err}")
            continue
        store.delete_cleanup(cleanup["id"])
        if what:
            LOG.info("host %s: removed %s of instance %s", host,
                     " and ".join(what), uuid)
        else:
            LOG.info("host %s: clean-up of instance %s dropped: it lives "
                     "there", host, uuid)
    return pending
