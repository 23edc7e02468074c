"""An incoming migration (and the source's clean-up) waits until an
outgoing migration of the same instance from this host has let go of its
copy: libvirt's confirm phase after the switch-over."""
import pytest

from agent.common.errors import Conflict, NotFound
from agent.host import live as livemod

UUID = "5a1d7c1e-3b7f-4a5e-9c43-0f2b1d9e8a01"


class Job:
    def __init__(self, releases):
        self.releases = releases
        self.waited = []

    def released(self, timeout=None):
        self.waited.append(timeout)
        return self.releases


@pytest.fixture
def live(mocker):
    out = livemod.Live(object(), mocker.Mock())
    mocker.patch.object(livemod.domains, "exists", return_value=True)
    return out


def _held_by(live, mocker, job):
    mocker.patch.object(live.jobs, "get", return_value=job)


def test_prepare_waits_for_the_copy_here_to_go(live, mocker):
    job = Job(releases=True)
    _held_by(live, mocker, job)
    mocker.patch.object(livemod.os.path, "isdir", return_value=True)
    # Released: prepare goes on to its own checks (here: still defined).
    with pytest.raises(Conflict, match="already defined"):
        live.prepare_dest(UUID, "shared")
    assert job.waited == [livemod.RELEASE_WAIT_S]


def test_prepare_refused_while_libvirt_still_holds_the_copy(live, mocker):
    _held_by(live, mocker, Job(releases=False))
    with pytest.raises(Conflict, match="still stopping its copy"):
        live.prepare_dest(UUID, "shared")


def test_source_clean_up_waits_too(live, mocker):
    _held_by(live, mocker, Job(releases=False))
    with pytest.raises(Conflict, match="still stopping its copy"):
        live.cleanup_source(UUID, "local")


def test_no_migration_here_no_wait(live, mocker):
    mocker.patch.object(live.jobs, "get", side_effect=NotFound("none"))
    with pytest.raises(Conflict, match="still defined"):
        live.cleanup_source(UUID, "local")
