"""Disk images with the real qemu-img and qemu-io on small files."""
import os
import struct
import subprocess

import pytest

from agent.common import disk
from agent.common.errors import Conflict, DroverError, InvalidInput, NotFound

MiB = 1 << 20


def qemu_io(path, fmt, command):
    """Run one qemu-io command; True if it succeeded (a read -P that finds
    other bytes fails)."""
    proc = subprocess.run(["qemu-io", "-f", fmt, "-c", command, str(path)],
                          capture_output=True, text=True)
    return proc.returncode == 0 and "Pattern verification failed" not in \
        proc.stdout + proc.stderr


def write_pattern(path, fmt, pattern="0xab", where="1M 1M"):
    assert qemu_io(path, fmt, f"write -P {pattern} {where}")


def has_pattern(path, fmt, pattern="0xab", where="1M 1M"):
    return qemu_io(path, fmt, f"read -P {pattern} {where}")


@pytest.mark.parametrize("fmt", ["qcow2", "raw"])
def test_create_and_info(tmp_path, fmt):
    path = tmp_path / "disk"
    made = disk.create(path, 8 * MiB, fmt)
    assert made == disk.info(path, fmt)
    assert (made.format, made.virtual_size, made.backing_file) == \
        (fmt, 8 * MiB, None)
    assert made.actual_size < 8 * MiB  # sparse / unallocated
    assert not os.path.exists(f"{path}.part")


def test_create_again_is_a_no_op_but_a_different_disk_conflicts(tmp_path):
    path = tmp_path / "disk"
    disk.create(path, 8 * MiB)
    write_pattern(path, "qcow2")
    assert disk.create(path, 8 * MiB).virtual_size == 8 * MiB
    assert has_pattern(path, "qcow2")  # not recreated
    with pytest.raises(Conflict):
        disk.create(path, 16 * MiB)
    with pytest.raises(Conflict):
        disk.create(path, 8 * MiB, "raw")


def test_backing_file(tmp_path):
    base, overlay = tmp_path / "base", tmp_path / "disk"
    disk.create(base, 4 * MiB, "raw")
    write_pattern(base, "raw")
    made = disk.create(overlay, fmt="qcow2", backing_file=base,
                       backing_format="raw")
    assert (made.backing_file, made.backing_format, made.virtual_size) == \
        (str(base), "raw", 4 * MiB)
    assert has_pattern(overlay, "qcow2")
    write_pattern(overlay, "qcow2", "0xcd")
    assert has_pattern(base, "raw")  # the base is untouched
    bigger = disk.create(tmp_path / "big", 16 * MiB, "qcow2", base, "raw")
    assert bigger.virtual_size == 16 * MiB


@pytest.mark.parametrize("kwargs", [
    dict(size=None),
    dict(size=0),
    dict(size=-1),
    dict(size="1G"),
    dict(size=True),
    dict(size=MiB, fmt="vmdk"),
    dict(size=MiB, fmt="raw", backing_file="/b", backing_format="raw"),
    dict(size=MiB, backing_file="relative", backing_format="raw"),
    dict(size=MiB, backing_file="/b"),  # no backing format
])
def test_create_refuses_bad_requests(tmp_path, kwargs):
    with pytest.raises(InvalidInput):
        disk.create(tmp_path / "disk", **kwargs)
    assert not (tmp_path / "disk").exists()


def test_relative_paths_are_refused():
    with pytest.raises(InvalidInput):
        disk.create("disk", MiB)
    with pytest.raises(InvalidInput):
        disk.info("../disk")


def test_convert_qcow2_to_raw_keeps_data_and_holes(tmp_path):
    src, dst = tmp_path / "disk.qcow2", tmp_path / "disk.raw"
    disk.create(src, 64 * MiB)
    write_pattern(src, "qcow2")
    out = disk.convert(src, dst, "qcow2", "raw")
    assert (out.format, out.virtual_size) == ("raw", 64 * MiB)
    assert has_pattern(dst, "raw")
    assert not has_pattern(dst, "raw", "0xab", "4M 1M")
    assert os.stat(dst).st_blocks * 512 < 8 * MiB  # sparse
    assert not os.path.exists(f"{dst}.part")


def test_convert_raw_to_qcow2_keeps_data(tmp_path):
    src, dst = tmp_path / "disk.raw", tmp_path / "disk.qcow2"
    disk.create(src, 64 * MiB, "raw")
    write_pattern(src, "raw")
    out = disk.convert(src, dst, "raw", "qcow2")
    assert out.format == "qcow2"
    assert has_pattern(dst, "qcow2")
    assert out.actual_size < 8 * MiB


def test_convert_in_place_and_flatten_backing_chain(tmp_path):
    base, path = tmp_path / "base", tmp_path / "disk"
    disk.create(base, 8 * MiB, "qcow2")
    write_pattern(base, "qcow2")
    disk.create(path, fmt="qcow2", backing_file=base, backing_format="qcow2")
    out = disk.convert(path, path, "qcow2", "raw")
    assert (out.format, out.backing_file) == ("raw", None)
    assert has_pattern(path, "raw")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base", "disk"]


def test_failed_convert_leaves_the_destination_alone(tmp_path):
    src, dst = tmp_path / "src.raw", tmp_path / "dst"
    disk.create(src, MiB, "raw")
    disk.create(dst, MiB, "raw")
    write_pattern(dst, "raw", where="0 4k")
    with pytest.raises(DroverError):
        disk.convert(src, dst, "qcow2", "raw")  # src is not qcow2
    assert has_pattern(dst, "raw", where="0 4k")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst", "src.raw"]


def test_a_raw_disk_holding_a_qcow2_header_stays_raw(tmp_path):
    """A guest can write a qcow2 header naming a host file as backing file
    into its raw disk; drover never probes the format."""
    secret = tmp_path / "host-secret"
    secret.write_bytes(b"\xee" * MiB)
    guest_disk = tmp_path / "disk"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b",
                    str(secret), "-F", "raw", str(guest_disk)], check=True)
    assert disk.info(guest_disk).backing_file == str(secret)  # probed
    seen = disk.info(guest_disk, "raw")
    assert (seen.format, seen.backing_file) == ("raw", None)
    out = disk.convert(guest_disk, tmp_path / "copy", "raw", "qcow2")
    assert out.backing_file is None
    assert not has_pattern(tmp_path / "copy", "qcow2", "0xee", "0 4k")


@pytest.mark.parametrize("fmt", ["qcow2", "raw"])
def test_grow(tmp_path, fmt):
    path = tmp_path / "disk"
    disk.create(path, 4 * MiB, fmt)
    write_pattern(path, fmt)
    assert disk.grow(path, 16 * MiB, fmt) is True
    assert disk.info(path, fmt).virtual_size == 16 * MiB
    assert has_pattern(path, fmt)
    assert disk.grow(path, 16 * MiB, fmt) is False


def test_shrink_is_refused(tmp_path):
    path = tmp_path / "disk"
    disk.create(path, 16 * MiB)
    with pytest.raises(InvalidInput, match="refusing to shrink"):
        disk.grow(path, 8 * MiB, "qcow2")
    assert disk.info(path, "qcow2").virtual_size == 16 * MiB


def test_check_clean_and_corrupt_qcow2(tmp_path):
    path = tmp_path / "disk"
    disk.create(path, 4 * MiB)
    write_pattern(path, "qcow2", where="0 1M")
    result = disk.check(path)
    assert result.ok and result.corruptions == 0
    # Zero the first refcount block: every cluster in use now has
    # refcount 0.
    with open(path, "r+b") as f:
        table = struct.unpack(">Q", f.read(56)[48:56])[0]
        f.seek(table)
        block = struct.unpack(">Q", f.read(8))[0]
        f.seek(block)
        f.write(b"\0" * 512)
    result = disk.check(path)
    assert not result.ok and result.corruptions > 0


def test_check_needs_a_qcow2_image(tmp_path):
    path = tmp_path / "disk"
    disk.create(path, MiB, "raw")
    with pytest.raises(DroverError, match="not in qcow2 format"):
        disk.check(path)


def test_missing_images_are_not_found(tmp_path):
    for call in (lambda p: disk.info(p), lambda p: disk.check(p),
                 lambda p: disk.grow(p, MiB, "raw"),
                 lambda p: disk.convert(p, tmp_path / "x", "raw", "qcow2")):
        with pytest.raises(NotFound):
            call(tmp_path / "missing")
