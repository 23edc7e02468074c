"""What the destination's clean-up may do after a failed live migration,
judged by the two promises."""
import pytest

from agent.common.errors import Conflict
from agent.host.migration.dest_cleanup import Plan, decide

INCOMING = [("paused", "migration"), ("paused", "starting-up"),
            ("nostate", "unknown")]
RUNNING_THERE = [("running", "migrated"), ("running", "booted"),
                 ("running", "postcopy"), ("paused", "postcopy"),
                 ("paused", "postcopy-failed"), ("paused", "user"),
                 ("paused", "unknown"), ("blocked", "unknown"),
                 ("shutdown", "unknown"), ("pmsuspended", "unknown")]


@pytest.mark.parametrize("dest", INCOMING)
@pytest.mark.parametrize("source", ["running", "paused", "blocked"])
def test_incoming_copy_goes_while_the_source_holds_the_guest(dest, source):
    assert decide(dest, source, "local") == Plan(
        destroy=True, undefine=True, remove_dir=True)


@pytest.mark.parametrize("dest", INCOMING)
def test_shared_storage_directory_is_the_sources_too(dest):
    assert decide(dest, "running", "shared") == Plan(destroy=True,
                                                     undefine=True)
    assert decide(None, "running", "shared") == Plan()


@pytest.mark.parametrize("dest", RUNNING_THERE)
@pytest.mark.parametrize("source", ["running", "paused", "shutoff", None])
@pytest.mark.parametrize("storage", ["local", "shared"])
def test_a_domain_running_on_the_destination_is_never_touched(
        dest, source, storage):
    plan = decide(dest, source, storage)
    assert plan.refuse and "may have completed" in plan.refuse
    assert not (plan.destroy or plan.undefine or plan.remove_dir)


@pytest.mark.parametrize("dest", INCOMING + [("shutoff", "unknown")])
@pytest.mark.parametrize("source", ["shutoff", "crashed", None])
def test_nothing_goes_when_the_source_does_not_hold_the_guest(dest,
                                                              source):
    plan = decide(dest, source, "local")
    assert plan.refuse and "source does not hold" in plan.refuse
    assert not (plan.destroy or plan.undefine or plan.remove_dir)


@pytest.mark.parametrize("source", ["shutoff", None])
def test_a_local_directory_may_hold_the_only_copy(source):
    plan = decide(None, source, "local")
    assert plan.refuse and "instance directory" in plan.refuse
    assert decide(None, source, "shared") == Plan()


def test_nothing_there_only_the_directory_goes():
    assert decide(None, "running", "local") == Plan(remove_dir=True)


@pytest.mark.parametrize("dest", [("shutoff", "unknown"),
                                  ("crashed", "unknown")])
def test_a_definition_that_does_not_run_is_undefined(dest):
    assert decide(dest, "running", "local") == Plan(undefine=True,
                                                    remove_dir=True)


# -- the agent's clean-up applying it, libvirt faked --------------------------

UUID = "5f0c2b8e-1a2b-4c3d-8e9f-0123456789ab"


class Dest:
    """The destination's libvirt as domains.* sees it: ``states`` are what
    successive reads return (the last one stays)."""

    def __init__(self, monkeypatch, tmp_path, *states):
        from agent.host import live
        self.states = list(states)
        self.destroyed = self.undefined = False
        self.removed = False
        monkeypatch.setattr(live, "POLL_S", 0)
        monkeypatch.setattr(live.domains, "state", self.state)
        monkeypatch.setattr(live.domains, "destroy", self.destroy)
        monkeypatch.setattr(live.domains, "undefine", self.undefine)
        monkeypatch.setattr(live.instances, "idir", lambda u, s: self)
        self.live = live.Live.__new__(live.Live)
        self.live.conn = None

    def state(self, conn, uuid):
        return self.states.pop(0) if len(self.states) > 1 else \
            self.states[0]

    def destroy(self, conn, uuid):
        self.destroyed = True
        self.states = [None]
        return True

    def undefine(self, conn, uuid):
        self.undefined = True
        return False

    def remove(self):
        self.removed = True
        return True


def test_libvirt_removing_its_incoming_copy_is_waited_for(monkeypatch,
                                                          tmp_path):
    dest = Dest(monkeypatch, tmp_path, ("paused", "migration"),
                ("paused", "migration"), None)
    out = dest.live.cleanup_dest(UUID, "local", source_state="running")
    assert not dest.destroyed and dest.removed and out["removed"]


def test_an_incoming_copy_left_there_is_destroyed(monkeypatch, tmp_path):
    from agent.host import live
    monkeypatch.setattr(live, "INCOMING_WAIT_S", 0)
    dest = Dest(monkeypatch, tmp_path, ("paused", "migration"))
    out = dest.live.cleanup_dest(UUID, "local", source_state="running")
    assert dest.destroyed and dest.undefined and dest.removed
    assert out["destroyed"]


def test_a_destination_that_resumed_meanwhile_is_left_alone(monkeypatch,
                                                            tmp_path):
    dest = Dest(monkeypatch, tmp_path, ("paused", "migration"),
                ("running", "migrated"))
    with pytest.raises(Conflict, match="may have completed"):
        dest.live.cleanup_dest(UUID, "local", source_state="running")
    assert not (dest.destroyed or dest.undefined or dest.removed)
