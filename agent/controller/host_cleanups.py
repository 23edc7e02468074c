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


def plan(cleanup, instance):
    """What to remove now for ``cleanup`` (a store record) given the
    store's ``instance`` (None: no record of it): a tuple of "domain",
    "files" (possibly empty: drop the record, touch nothing), or WAIT."""
    wanted = tuple(r for r in ("domain", "files") if r in cleanup["remove"])
    if instance is None or instance["vm_state"] == states.DELETED:
        return wanted
    if instance["task_state"] is not None:
        return WAIT
    if instance["host"] == cleanup["host"]:
        return ()
    return tuple(r for r in wanted if r == "domain")


def _instance(store, uuid):
    try:
        return store.get_instance(uuid, deleted=True)
    except NotFound:
        return None


def _remove(call, cleanup, what):
    host, uuid = cleanup["host"], cleanup["instance_uuid"]
    if "domain" in what:
        call(host, "instance.destroy", uuid=uuid)
        call(host, "instance.undefine", uuid=uuid)
    if "files" in what:
        call(host, "instance.cleanup", uuid=uuid,
             storage=cleanup["storage"])


def run(store, call, host):
    """Do the clean-ups ``host`` owes, through ``call(host, method,
    **params)``.  Returns the ones that failed or must wait, as one line
    each (empty: all done).  HostUnreachable is raised: the host is not
    back after all."""
    pending = []
    for cleanup in store.list_cleanups(host=host):
        uuid = cleanup["instance_uuid"]
        what = plan(cleanup, _instance(store, uuid))
        if what is WAIT:
            pending.append(f"instance {uuid} is busy")
            continue
        try:
            _remove(call, cleanup, what)
        except HostUnreachable:
            raise
        except DroverError as err:
            LOG.warning("host %s: clean-up of instance %s failed: %s",
                        host, uuid, err)
            pending.append(f"instance {uuid}: {err}")
            continue
        store.delete_cleanup(cleanup["id"])
        if what:
            LOG.info("host %s: removed %s of deleted instance %s", host,
                     " and ".join(what), uuid)
        else:
            LOG.info("host %s: clean-up of instance %s dropped: it lives "
                     "there", host, uuid)
    return pending
