"""Machine settings held by labs and restored by the last one."""
import json
import os

import pytest

from agent.lab import tuning


@pytest.fixture
def machine(tmp_path, monkeypatch):
    kvm = tmp_path / "kvm"
    kvm.write_text("")
    os.chmod(kvm, 0o600)
    uffd = tmp_path / "uffd"
    uffd.write_text("0\n")
    monkeypatch.setattr(tuning, "KVM", str(kvm))
    monkeypatch.setattr(tuning, "UFFD", str(uffd))
    return kvm, uffd, str(tmp_path / "record.json")


def _state(kvm, uffd):
    return oct(os.stat(kvm).st_mode & 0o777), uffd.read_text().strip()


def test_last_lab_down_restores(machine):
    kvm, uffd, record = machine
    tuning.acquire("/lab/a", record)
    tuning.acquire("/lab/b", record)
    assert _state(kvm, uffd) == ("0o666", "1")
    tuning.release("/lab/a", lambda lab: True, record)
    assert _state(kvm, uffd) == ("0o666", "1")
    tuning.release("/lab/b", lambda lab: True, record)
    assert _state(kvm, uffd) == ("0o600", "0")
    assert not os.path.exists(record)


def test_crashed_labs_do_not_pin_the_settings(machine):
    kvm, uffd, record = machine
    tuning.acquire("/lab/crashed", record)
    tuning.acquire("/lab/a", record)
    tuning.release("/lab/a", lambda lab: False, record)
    assert _state(kvm, uffd) == ("0o600", "0")


def test_acquire_twice_keeps_the_first_originals(machine):
    kvm, uffd, record = machine
    tuning.acquire("/lab/a", record)
    tuning.acquire("/lab/a", record)
    with open(record) as f:
        data = json.load(f)
    assert data == {"kvm_mode": 0o600, "uffd": "0", "holders": ["/lab/a"]}
