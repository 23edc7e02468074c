"""Last of the integration tests (files run in name order): after every
other test has booted, moved, broken and deleted guests on the session
lab, ``drover fleet audit`` finds nothing at all: the database matches
libvirt and the disks on every host."""
import pytest

from helpers import audit_rows, new_findings

pytestmark = pytest.mark.integration


def test_the_session_lab_audits_clean_after_the_whole_suite(fleet):
    fleet.delete_all_servers()
    assert new_findings(fleet, before=set()) == [], audit_rows(fleet)
