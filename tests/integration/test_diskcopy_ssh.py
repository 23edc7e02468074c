"""Sparse disk copies through the real OpenSSH client and a real sshd.

sshd runs as root in a network namespace of its own (dcp-*), reached over
a veth pair with a /30 of 198.18.201.128/25, with a temporary host key
and authorized key (as in test_ssh_transport).  The receiver is this
checkout's ``python -m agent.transport.diskcopy receive``; the namespace
shares this process's files, so files it writes appear here (but not
mounts made after sshd started: the 8 MiB tmpfs is mounted before).
"""
import hashlib
import os
import signal
import sys
import time

import pytest
from sshd import SSHD, Sshd, keygen, run

from agent.common.errors import InvalidInput
from agent.transport import diskcopy
from agent.transport.diskcopy import ConnectionCut, DestinationFull
from agent.transport.errors import HostKeyRejected

MiB = 1 << 20

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists(SSHD),
    reason="needs root and OpenSSH sshd")


class SmallFsSshd(Sshd):
    """With an 8 MiB tmpfs, mounted before sshd starts (its mount namespace
    is copied then)."""

    def create(self):
        super().create()
        self.small_fs = self.dir / "small"
        self.small_fs.mkdir()
        run("mount", "-t", "tmpfs", "-o", "size=8m", "dcp-small",
            str(self.small_fs))

    def destroy(self):
        super().destroy()
        run("umount", str(self.small_fs), check=False)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = SmallFsSshd(tmp_path_factory.mktemp("dcp"), "dcp",
                         "198.18.201.128/25")
    try:
        server.create()
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "instances"
    path.mkdir()
    return path


@pytest.fixture
def copy_args(sshd, root, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"{sshd.address} {sshd.host_key_line}")
    return {"ssh_user": "root", "identity": str(sshd.client_key),
            "known_hosts": str(known_hosts),
            "receiver_argv": [sys.executable, "-m",
                              "agent.transport.diskcopy", "receive",
                              "--root", str(root)]}


def sparse_file(path, size, data, pieces=8):
    """``size`` bytes with ``data`` random bytes spread over ``pieces``
    extents."""
    step, length = size // pieces, data // pieces
    with open(path, "wb") as f:
        f.truncate(size)
        for i in range(pieces):
            f.seek(i * step + step // 3)
            f.write(os.urandom(length))
    return str(path)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def wait_for(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_sparse_copy_is_identical_and_stays_sparse(sshd, copy_args, root,
                                                   tmp_path,
                                                   record_property):
    src = sparse_file(tmp_path / "disk", 256 * MiB, 32 * MiB)
    dest = root / "u1" / "disk"
    seen = []
    result = diskcopy.send_file(src, sshd.address, str(dest),
                                progress=lambda d, t: seen.append(d),
                                **copy_args)
    assert sha256(dest) == sha256(src)
    allocated = os.stat(src).st_blocks * 512
    assert result["bytes_allocated"] == allocated
    assert result["bytes_sent"] <= 1.1 * allocated
    assert os.stat(dest).st_blocks * 512 <= 1.1 * allocated
    assert seen[-1] == result["bytes_data"] >= 32 * MiB
    assert sorted(p.name for p in dest.parent.iterdir()) == ["disk"]
    rate = result["bytes_sent"] / result["seconds"] / MiB
    record_property("diskcopy_seconds", round(result["seconds"], 2))
    print(f"\n256 MiB virtual / {allocated / MiB:.0f} MiB allocated: sent "
          f"{result['bytes_sent'] / MiB:.1f} MiB in {result['seconds']:.2f}"
          f" s ({rate:.0f} MiB/s), destination "
          f"{os.stat(dest).st_blocks * 512 / MiB:.1f} MiB allocated")


def test_instance_directory_copy(sshd, copy_args, root, tmp_path):
    inst = tmp_path / "inst"
    inst.mkdir()
    sparse_file(inst / "disk", 64 * MiB, 4 * MiB, pieces=2)
    (inst / "disk.info").write_text('{"disk": "raw"}')
    (inst / "libvirt.xml").write_text("<domain type='qemu'/>")
    (inst / "console.log").write_bytes(b"")
    result = diskcopy.send_dir(str(inst), sshd.address, str(root / "u2"),
                               **copy_args)
    assert sorted(result["files"]) == ["console.log", "disk", "disk.info",
                                       "libvirt.xml"]
    for name in result["files"]:
        assert sha256(root / "u2" / name) == sha256(inst / name)


def test_unknown_host_key_is_refused(sshd, copy_args, root, tmp_path):
    src = sparse_file(tmp_path / "disk", 8 * MiB, MiB)
    with open(copy_args["known_hosts"], "w") as f:
        f.write(f"{sshd.address} {keygen(tmp_path / 'other_key')}")
    with pytest.raises(HostKeyRejected) as err:
        diskcopy.send_file(src, sshd.address, str(root / "disk"),
                           **copy_args)
    assert str(err.value) == (f"host key of {sshd.address} does not match "
                              f"{copy_args['known_hosts']}: ssh refused it")
    with open(copy_args["known_hosts"], "w"):
        pass
    with pytest.raises(HostKeyRejected, match="is not in"):
        diskcopy.send_file(src, sshd.address, str(root / "disk"),
                           **copy_args)
    assert list(root.iterdir()) == []


def _ssh_children():
    me = str(os.getpid())
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if fields[1] == me and comm == "ssh":
            found.append(int(pid))
    return found


def test_killing_ssh_mid_copy_leaves_no_file(sshd, copy_args, root,
                                             tmp_path):
    src = sparse_file(tmp_path / "disk", 256 * MiB, 64 * MiB)
    dest = root / "disk"
    part = root / "disk.part"
    killed = []

    def kill_once_receiving(done, _total):
        if done >= 8 * MiB and not killed:
            assert wait_for(part.exists), "receiver never started"
            killed.extend(_ssh_children())
            for pid in killed:
                os.kill(pid, signal.SIGKILL)

    with pytest.raises(ConnectionCut, match="ssh killed by signal 9"):
        diskcopy.send_file(src, sshd.address, str(dest),
                           progress=kill_once_receiving, **copy_args)
    assert len(killed) == 1
    assert wait_for(lambda: not sshd.sessions()), "receiver still running"
    assert list(root.iterdir()) == []


def test_refused_destination_path(sshd, copy_args, tmp_path):
    src = sparse_file(tmp_path / "disk", 8 * MiB, MiB)
    with pytest.raises(InvalidInput, match="outside the allowed root"):
        diskcopy.send_file(src, sshd.address, str(tmp_path / "disk2"),
                           **copy_args)
    assert not (tmp_path / "disk2.part").exists()


def test_destination_disk_full(sshd, copy_args, tmp_path):
    small_fs = sshd.small_fs
    src = sparse_file(tmp_path / "disk", 64 * MiB, 16 * MiB)
    copy_args["receiver_argv"][-1] = str(small_fs)
    with pytest.raises(DestinationFull) as err:
        diskcopy.send_file(src, sshd.address, str(small_fs / "disk"),
                           **copy_args)
    assert "destination disk full" in str(err.value)
    assert "\n" not in str(err.value)
    assert list(small_fs.iterdir()) == []
