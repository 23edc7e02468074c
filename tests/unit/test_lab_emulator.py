"""The lab's QEMU: downloaded from bookworm-backports into the cache once,
run through a wrapper that the lab bind-mounts over the hosts' QEMU; the
machine's own QEMU when [lab] qemu = system."""
import pathlib

from agent.lab import debs, emulator
from agent.lab.files import LabFiles
from agent.lab.plan import make_plan


def _fake_debs(monkeypatch, calls):
    def download(cache, packages, suite=None):
        calls.append(("download", tuple(packages), suite))
        out = {}
        for p in packages:
            deb = cache / f"{p}_10.0.2_amd64.deb"
            deb.write_text("deb")
            out[p] = deb
        return out

    def unpack(deb, root):
        calls.append(("unpack", deb.name))
        (pathlib.Path(root) / "usr" / "bin").mkdir(parents=True,
                                                   exist_ok=True)
    monkeypatch.setattr(debs, "download", download)
    monkeypatch.setattr(debs, "unpack", unpack)


def test_system_means_the_machines_own_qemu(tmp_path):
    assert emulator.wrapper(tmp_path, emulator.SYSTEM) is None
    assert list(tmp_path.iterdir()) == []


def test_backports_are_unpacked_once_and_wrapped(tmp_path, monkeypatch):
    calls = []
    _fake_debs(monkeypatch, calls)
    script = emulator.wrapper(tmp_path, emulator.BACKPORTS)
    text = pathlib.Path(script).read_text()
    root = tmp_path / "qemu-backports" / "root"
    assert f"exec {root}/usr/bin/qemu-system-x86_64 " in text
    assert f"-L {root}/usr/share/qemu" in text
    assert text.rstrip().endswith('"$@"')
    assert ("download", emulator.PACKAGES, "bookworm-backports") in calls
    assert sum(c[0] == "unpack" for c in calls) == len(emulator.PACKAGES)
    # Again with the same packages: nothing unpacked again.
    calls.clear()
    emulator.wrapper(tmp_path, emulator.BACKPORTS)
    assert not [c for c in calls if c[0] == "unpack"]


def test_hosts_bind_the_wrapper_only_while_it_exists(tmp_path):
    files = LabFiles(tmp_path)
    host = make_plan("drvu", "198.18.90.0/24", None).hosts(1)[0]
    assert emulator.BINARY not in [t for _s, t in files.binds(host)]
    pathlib.Path(files.qemu_wrapper).write_text("#!/bin/sh\n")
    assert (files.qemu_wrapper, emulator.BINARY) in files.binds(host)
