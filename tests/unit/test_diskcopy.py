"""Sparse disk copies: extents, the stream format, the receiver's checks.

Sender and receiver meet through an in-process pipe or, for send_file and
send_dir, through a stand-in ``ssh`` that runs the remote command locally.
"""
import errno
import hashlib
import io
import os
import stat
import sys
import threading

import pytest

from agent.common.errors import DroverError, InvalidInput, NotFound
from agent.transport import diskcopy
from agent.transport.diskcopy import (ChecksumMismatch, ConnectionCut,
                                      CopyFailed, DestinationFull)
from agent.transport.errors import HostKeyRejected, HostUnreachable

MiB = 1 << 20


def sparse_file(path, size, pieces):
    """A file of ``size`` bytes with random data at (offset, length)."""
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, length in pieces:
            f.seek(offset)
            f.write(os.urandom(length))
    return str(path)


def digest(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def stream_bytes(src, tmp_path):
    """The whole stream write_stream makes for ``src``."""
    out = tmp_path / "stream"
    with open(out, "wb") as f:
        info = diskcopy.write_stream(src, f.fileno())
    return out.read_bytes(), info


@pytest.fixture
def src(tmp_path):
    return sparse_file(tmp_path / "disk", 64 * MiB,
                       [(0, 64 * 1024), (8 * MiB, 5 * MiB + 4096),
                        (40 * MiB, 3 * MiB)])


@pytest.fixture
def dest_dir(tmp_path):
    path = tmp_path / "dest"
    path.mkdir()
    return path


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir())


# -- extents ----------------------------------------------------------------

def test_extents_skip_holes(src):
    assert diskcopy.extents(src) == [(0, 64 * 1024),
                                     (8 * MiB, 5 * MiB + 4096),
                                     (40 * MiB, 3 * MiB)]


def test_extents_of_empty_and_hole_only_files(tmp_path):
    assert diskcopy.extents(sparse_file(tmp_path / "e", 0, [])) == []
    assert diskcopy.extents(sparse_file(tmp_path / "h", 32 * MiB, [])) == []


def test_extents_end_at_the_file_size(tmp_path):
    path = sparse_file(tmp_path / "tail", 4 * MiB + 100,
                       [(4 * MiB, 100)])
    assert diskcopy.extents(path) == [(4 * MiB, 100)]


def test_extents_whole_file_without_seek_data(src, mocker):
    mocker.patch("os.lseek", side_effect=OSError(errno.EINVAL, "nope"))
    assert diskcopy.extents(src) == [(0, 64 * MiB)]


# -- stream round trip --------------------------------------------------------

def pipe_copy(src, dest, **kwargs):
    """write_stream -> os.pipe -> receive_file; return both results."""
    r, w = os.pipe()
    sent = {}

    def sender():
        try:
            sent.update(diskcopy.write_stream(src, w, **kwargs))
        finally:
            os.close(w)
    thread = threading.Thread(target=sender)
    thread.start()
    try:
        with open(r, "rb", buffering=0) as stream:
            got = diskcopy.receive_file(stream, str(dest),
                                        os.stat(src).st_size)
    finally:
        thread.join()
    return sent, got


def test_round_trip_copies_data_and_keeps_holes(src, dest_dir):
    dest = dest_dir / "disk"
    seen = []
    sent, got = pipe_copy(src, dest,
                          progress=lambda done, total: seen.append(
                              (done, total)))
    assert digest(dest) == digest(src)
    assert got == sent["sha256"]
    data = 64 * 1024 + 5 * MiB + 4096 + 3 * MiB
    assert sent["bytes_data"] == data
    assert sent["virtual_size"] == 64 * MiB
    assert data < sent["bytes_sent"] < data + 4096
    assert sent["bytes_sent"] <= 1.1 * sent["bytes_allocated"]
    # Holes stay holes: as much allocated as the source, not 64 MiB.
    assert os.stat(dest).st_blocks * 512 <= sent["bytes_allocated"] + 65536
    assert diskcopy.extents(str(dest)) == diskcopy.extents(src)
    assert seen[0] == (0, data) and seen[-1] == (data, data)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert leftovers(dest_dir) == ["disk"]


def test_round_trip_of_small_and_empty_files(tmp_path, dest_dir):
    small = tmp_path / "disk.info"
    small.write_bytes(b'{"/x/disk": "qcow2"}')
    empty = tmp_path / "console.log"
    empty.write_bytes(b"")
    for path in (small, empty):
        pipe_copy(str(path), dest_dir / path.name)
        assert (dest_dir / path.name).read_bytes() == path.read_bytes()


def test_existing_destination_and_stale_part_are_replaced(src, dest_dir):
    (dest_dir / "disk").write_bytes(b"old")
    (dest_dir / "disk.part").write_bytes(b"crash leftover" * 1000)
    pipe_copy(src, dest_dir / "disk")
    assert digest(dest_dir / "disk") == digest(src)
    assert leftovers(dest_dir) == ["disk"]


def test_bandwidth_limit_slows_the_stream(tmp_path, dest_dir, mocker):
    path = sparse_file(tmp_path / "d", 8 * MiB, [(0, 8 * MiB)])
    sleep = mocker.patch("time.sleep")
    pipe_copy(path, dest_dir / "d", bandwidth=4 * MiB)
    assert sum(call.args[0] for call in sleep.call_args_list) > 1.0


# -- broken streams leave nothing -------------------------------------------

@pytest.mark.parametrize("cut", [0, 5, diskcopy.HEADER.size + 3,
                                 diskcopy.HEADER.size + 17 + 1000,
                                 -diskcopy.DIGEST_SIZE - 1, -1])
def test_cut_off_stream_leaves_no_file(src, tmp_path, dest_dir, cut):
    data, _ = stream_bytes(src, tmp_path)
    with pytest.raises(ConnectionCut, match="ended early"):
        diskcopy.receive_file(io.BytesIO(data[:cut]), str(dest_dir / "disk"),
                              64 * MiB)
    assert leftovers(dest_dir) == []


def test_corrupted_byte_fails_the_checksum(src, tmp_path, dest_dir):
    data, _ = stream_bytes(src, tmp_path)
    spoilt = bytearray(data)
    spoilt[len(data) // 2] ^= 0x01          # inside the second extent
    with pytest.raises(ChecksumMismatch, match="checksum mismatch"):
        diskcopy.receive_file(io.BytesIO(bytes(spoilt)),
                              str(dest_dir / "disk"), 64 * MiB)
    assert leftovers(dest_dir) == []


def test_record_outside_the_file_is_refused(dest_dir):
    data = (diskcopy.HEADER.pack(diskcopy.MAGIC, diskcopy.VERSION, MiB) +
            diskcopy.RECORD.pack(b"D", MiB - 10, 100) + b"x" * 100)
    with pytest.raises(CopyFailed, match="bad record: 100 bytes at 1048566"):
        diskcopy.receive_file(io.BytesIO(data), str(dest_dir / "disk"), MiB)
    assert leftovers(dest_dir) == []


def test_not_a_stream_is_refused(dest_dir):
    with pytest.raises(CopyFailed, match="not a drover disk stream"):
        diskcopy.receive_file(io.BytesIO(b"SSH-2.0 hello" * 10),
                              str(dest_dir / "disk"), 10)
    assert leftovers(dest_dir) == []


def test_disk_full_removes_the_part_file(src, tmp_path, dest_dir, mocker):
    data, _ = stream_bytes(src, tmp_path)
    mocker.patch("os.pwrite", side_effect=OSError(errno.ENOSPC, "full"))
    with pytest.raises(DestinationFull, match="destination disk full"):
        diskcopy.receive_file(io.BytesIO(data), str(dest_dir / "disk"),
                              64 * MiB)
    assert leftovers(dest_dir) == []


# -- destination paths --------------------------------------------------------

def test_dest_path_inside_a_root_is_accepted(tmp_path):
    root = str(tmp_path / "instances")
    assert diskcopy.check_dest_path(root + "//u1/./disk", [root]) == \
        root + "/u1/disk"
    assert diskcopy.check_dest_path(root + "/u1/disk",
                                    ["/elsewhere", root + "/"]) == \
        root + "/u1/disk"


@pytest.mark.parametrize("path, message", [
    ("u1/disk", "not an absolute path"),
    ("{root}/u1/../../etc/passwd", "contains '..'"),
    ("{root}/..", "contains '..'"),
    ("/etc/passwd", "outside the allowed root"),
    ("{root}", "outside the allowed root"),
    ("{root}-other/disk", "outside the allowed root"),
    ("{root}/escape/disk", "outside the allowed root"),
])
def test_dest_path_refused(tmp_path, path, message):
    root = tmp_path / "instances"
    root.mkdir()
    (root / "escape").symlink_to("/etc")
    with pytest.raises(InvalidInput, match=message):
        diskcopy.check_dest_path(path.format(root=root), [str(root)])


# -- the receiver command line ------------------------------------------------

def run_receiver(monkeypatch, capsys, stream, argv):
    """receive_main(argv) with ``stream`` on its stdin."""
    r, w = os.pipe()
    writer = threading.Thread(target=lambda: (
        _write_ignoring_epipe(w, stream), os.close(w)))
    writer.start()
    with open(r, "rb") as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        code = diskcopy.receive_main(argv)
    writer.join()
    out, err = capsys.readouterr()
    return code, out, err


def _write_ignoring_epipe(fd, data):
    try:
        diskcopy._write_all(fd, data)
    except BrokenPipeError:
        pass


def test_receive_main_prints_the_digest(src, tmp_path, dest_dir,
                                        monkeypatch, capsys):
    data, info = stream_bytes(src, tmp_path)
    dest = dest_dir / "u1" / "disk"
    code, out, err = run_receiver(
        monkeypatch, capsys, data, ["--path", str(dest), "--size",
                                    str(64 * MiB), "--root", str(dest_dir)])
    assert (code, out, err) == (0, f"ok {info['sha256']}\n", "")
    assert digest(dest) == digest(src)
    assert stat.S_IMODE(os.stat(dest_dir / "u1").st_mode) & 0o755 == 0o755


@pytest.mark.parametrize("cut, code, message", [
    (None, 2, "outside the allowed root"),
    (100, 5, "copy cut off"),
])
def test_receive_main_fails_with_one_line(src, tmp_path, dest_dir,
                                          monkeypatch, capsys, cut, code,
                                          message):
    data, _ = stream_bytes(src, tmp_path)
    root = dest_dir if cut else dest_dir / "other"
    got, out, err = run_receiver(
        monkeypatch, capsys, data[:cut],
        ["--path", str(dest_dir / "disk"), "--size", str(64 * MiB),
         "--root", str(root)])
    assert got == code and out == ""
    assert message in err and err.count("\n") == 1
    assert leftovers(dest_dir) == []


# -- send_file / send_dir through a stand-in ssh ------------------------------

@pytest.fixture
def local_ssh(tmp_path, monkeypatch):
    """An ``ssh`` on PATH that runs its last argument (the remote command)
    with /bin/sh, as sshd would, and records its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "ssh.args"
    fake = bin_dir / "ssh"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$SSH_ARGS_LOG"\n'
                    'for last; do :; done\nexec /bin/sh -c "$last"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("SSH_ARGS_LOG", str(log))
    return log


def send_kwargs(root):
    return {"ssh_user": "root", "identity": "/keys/id", "known_hosts":
            "/keys/known_hosts",
            "receiver_argv": [sys.executable, "-m", "agent.transport.diskcopy",
                              "receive", "--root", str(root)]}


def test_send_file_strict_ssh_and_result(src, dest_dir, local_ssh):
    dest = dest_dir / "u1" / "disk image"
    result = diskcopy.send_file(src, "198.18.201.9", str(dest),
                                **send_kwargs(dest_dir))
    assert digest(dest) == digest(src)
    assert result["bytes_sent"] <= 1.1 * result["bytes_allocated"]
    assert result["virtual_size"] == 64 * MiB and result["seconds"] > 0
    args = local_ssh.read_text().splitlines()
    for option in ("BatchMode=yes", "StrictHostKeyChecking=yes",
                   "UserKnownHostsFile=/keys/known_hosts",
                   "Compression=no"):
        assert option in args
    assert args[args.index("-i") + 1] == "/keys/id"
    assert args[-2:-1] == ["198.18.201.9"]
    assert f"--path '{dest}' --size {64 * MiB}" in args[-1]


def test_send_file_reports_a_refused_path(src, tmp_path, local_ssh):
    with pytest.raises(InvalidInput, match="outside the allowed root"):
        diskcopy.send_file(src, "h2", "/etc/disk",
                           **send_kwargs(tmp_path / "root"))
    assert not os.path.exists("/etc/disk.part")


def test_send_dir_copies_every_file_with_overall_progress(
        src, tmp_path, dest_dir, local_ssh):
    inst = tmp_path / "inst"
    (inst / "sub").mkdir(parents=True)
    os.rename(src, inst / "disk")
    (inst / "disk.info").write_text('{"disk": "raw"}')
    (inst / "console.log").write_bytes(b"boot\n" * 1000)
    (inst / "sub" / "libvirt.xml").write_text("<domain/>")
    (inst / "link").symlink_to(inst / "disk.info")
    seen = []
    result = diskcopy.send_dir(str(inst), "h2", str(dest_dir / "u1"),
                               progress=lambda d, t: seen.append((d, t)),
                               **send_kwargs(dest_dir))
    names = ["console.log", "disk", "disk.info", "sub/libvirt.xml"]
    assert sorted(result["files"]) == names
    for name in names:
        assert digest(dest_dir / "u1" / name) == digest(inst / name)
    assert not (dest_dir / "u1" / "link").exists()
    total = result["bytes_data"]
    assert {t for _, t in seen} == {total}
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert seen[-1] == (total, total)


# -- ssh failures become one clear line ---------------------------------------

UNKNOWN_KEY = ("No ED25519 host key is known for 198.18.201.2 and you have "
               "requested strict checking.\r\nHost key verification failed."
               "\r\n")
CHANGED_KEY = ("@@@@@@@@@@@\r\n@    WARNING: REMOTE HOST IDENTIFICATION HAS "
               "CHANGED!     @\r\n...\r\nHost key verification failed.\r\n")


@pytest.mark.parametrize("code, stderr, cls, message", [
    (255, UNKNOWN_KEY, HostKeyRejected,
     "host key of h2 is not in /kh: ssh refused it"),
    (255, CHANGED_KEY, HostKeyRejected,
     "host key of h2 does not match /kh: ssh refused it"),
    (255, "ssh: connect to host h2 port 22: Connection refused\r\n",
     HostUnreachable, "cannot reach h2 over ssh: ssh: connect to host"),
    (255, "root@h2: Permission denied (publickey).\r\n", HostUnreachable,
     "cannot reach h2 over ssh: root@h2: Permission denied"),
    (255, "client_loop: send disconnect: Broken pipe\r\n", ConnectionCut,
     "copy to h2:/d cut off: client_loop: send disconnect: Broken pipe"),
    (-9, "", ConnectionCut, "cut off: ssh killed by signal 9"),
    (4, "x: destination disk full: no space left for /d\n", DestinationFull,
     "x: destination disk full"),
    (3, "x: checksum mismatch\n", ChecksumMismatch, "x: checksum mismatch"),
    (2, "x: destination '/d' is outside\n", InvalidInput, "x: destination"),
    (5, "x: copy cut off: the stream ended early\n", ConnectionCut,
     "x: copy cut off"),
    (127, "sh: 1: drover-agent: not found\n", CopyFailed,
     "copy to h2:/d failed (exit 127): sh: 1: drover-agent: not found"),
])
def test_failures_map_to_error_classes(code, stderr, cls, message):
    err = diskcopy._failure(code, stderr, "h2", "/kh", "h2:/d")
    assert type(err) is cls
    assert message in str(err) and "\n" not in str(err)


def test_send_file_errors_before_any_connection(src, tmp_path, monkeypatch):
    with pytest.raises(NotFound, match="no file /nonexistent/disk to send"):
        diskcopy.send_file("/nonexistent/disk", "h2", "/r/disk",
                           **send_kwargs(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DroverError, match="cannot run ssh: No such file"):
        diskcopy.send_file(src, "h2", "/r/disk", **send_kwargs(tmp_path))
