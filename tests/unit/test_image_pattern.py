"""Pure parts of the lab guest image, and the guest scripts that mirror them.

The guest computes the data pattern (pattern.awk) and reads its settings
(drover-settings) with busybox; where busybox is installed these tests run
those very scripts and compare them with the host side.
"""
import hashlib
import lzma
import os
import shutil
import subprocess

import pytest

from agent.common.errors import DroverError, InvalidInput
from agent.lab import image

# Lines of the cloud kernel's modules.dep (depmod -b), paths shortened.
MODULES_DEP = """\
acpi/button.ko:
virtio/virtio.ko: virtio/virtio_ring.ko
virtio/virtio_ring.ko:
virtio/virtio_pci_modern_dev.ko:
virtio/virtio_pci_legacy_dev.ko:
virtio/virtio_pci.ko: virtio/virtio_pci_legacy_dev.ko \
virtio/virtio_pci_modern_dev.ko virtio/virtio.ko virtio/virtio_ring.ko
block/virtio_blk.ko: virtio/virtio.ko virtio/virtio_ring.ko
net/virtio_net.ko: net/net_failover.ko core/failover.ko virtio/virtio.ko \
virtio/virtio_ring.ko
net/net_failover.ko: core/failover.ko
input/evdev.ko:
nvdimm/nd_virtio.ko: virtio/virtio_ring.ko
core/failover.ko:
"""

BUSYBOX = shutil.which("busybox")
needs_busybox = pytest.mark.skipif(BUSYBOX is None,
                                   reason="busybox is not installed")


def _names(paths):
    return [os.path.basename(p).removesuffix(".ko") for p in paths]


def test_module_order_loads_dependencies_first_and_once():
    order = _names(image.module_order(MODULES_DEP, image.GUEST_MODULES))
    assert order == ["virtio_ring", "virtio", "virtio_pci_modern_dev",
                     "virtio_pci_legacy_dev", "virtio_pci", "virtio_blk",
                     "failover", "net_failover", "virtio_net", "button",
                     "evdev"]


def test_module_order_handles_compressed_modules():
    dep = ("kernel/a/virtio_net.ko.xz: kernel/a/net_failover.ko.xz "
           "kernel/a/failover.ko.xz\n"
           "kernel/a/net_failover.ko.xz: kernel/a/failover.ko.xz\n"
           "kernel/a/failover.ko.xz:\n")
    assert _names(p.removesuffix(".xz")
                  for p in image.module_order(dep, ["virtio-net"])) == [
        "failover", "net_failover", "virtio_net"]


def test_compressed_modules_are_copied_decompressed(tmp_path):
    src = tmp_path / "virtio.ko.xz"
    src.write_bytes(lzma.compress(b"\x7fELF module"))
    image._copy_module(src, tmp_path / "virtio.ko")
    assert (tmp_path / "virtio.ko").read_bytes() == b"\x7fELF module"


def test_module_order_rejects_a_missing_module():
    with pytest.raises(DroverError, match="no module e1000"):
        image.module_order(MODULES_DEP, ["e1000"])


def test_data_pattern_is_seeded_sized_and_has_no_repeated_block():
    data = image.data_pattern(7)
    assert len(data) == image.DATA_SIZE
    assert data == image.data_pattern(7)
    assert data != image.data_pattern(8)
    assert b"\0" not in data
    blocks = {data[i:i + 4096] for i in range(0, len(data), 4096)}
    assert len(blocks) == image.DATA_SIZE // 4096
    assert image.data_pattern_sha256(7) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("seed", [-1, image.SEED_MAX + 1, "3", 1.5])
def test_data_pattern_rejects_bad_seeds(seed):
    with pytest.raises(InvalidInput):
        image.data_pattern(seed)


@needs_busybox
@pytest.mark.parametrize("seed", [0, 42, image.SEED_MAX])
def test_guest_awk_writes_the_same_pattern(seed):
    out = subprocess.run(
        [BUSYBOX, "awk", "-v", f"seed={seed}", "-v",
         f"size={image.DATA_SIZE}", "-f",
         str(image.GUEST_DIR / "pattern.awk")],
        capture_output=True, check=True).stdout
    assert hashlib.sha256(out).hexdigest() == image.data_pattern_sha256(seed)


def _smbios_type11(strings, handle=0x0b00):
    """A type 11 structure as the guest sees it in .../11-0/raw."""
    body = b"".join(s.encode() + b"\0" for s in strings) + b"\0"
    return bytes([11, 5]) + handle.to_bytes(2, "little") + \
        bytes([len(strings)]) + body


@pytest.fixture
def settings(tmp_path):
    """Run guest/drover-settings with busybox applets only."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for applet in ("sh", "cat", "od", "tail", "tr", "sed"):
        (bindir / applet).symlink_to(BUSYBOX)

    def run(cmdline, oem_strings):
        (tmp_path / "cmdline").write_text(cmdline + "\n")
        entry = tmp_path / "dmi" / "11-0"
        entry.mkdir(parents=True, exist_ok=True)
        # A handle byte of 0x0a ('\n') must not confuse the parser.
        (entry / "raw").write_bytes(_smbios_type11(oem_strings, 0x0a0a))
        env = {"PATH": str(bindir),
               "DROVER_CMDLINE": str(tmp_path / "cmdline"),
               "DROVER_DMI_DIR": str(tmp_path / "dmi")}
        out = subprocess.run([str(bindir / "sh"),
                              str(image.GUEST_DIR / "drover-settings")],
                             env=env, capture_output=True, text=True,
                             check=True).stdout
        return out.splitlines()
    return run


@needs_busybox
def test_guest_reads_oem_strings_after_the_kernel_cmdline(settings):
    lines = settings(
        "console=ttyS0 drover.ip=10.9.9.9/8 drover.hostname=fromcmd quiet",
        image.oem_strings("198.18.0.100/24", hostname="vm1",
                          gateway="198.18.0.1", dirty_mbps=8)
        + ["other.key=1"])
    assert lines == ["ip=10.9.9.9/8", "hostname=fromcmd",
                     "ip=198.18.0.100/24", "gateway=198.18.0.1",
                     "hostname=vm1", "dirty_mbps=8"]
    # The guest's init keeps the last value of each key: the OEM string.
    assert dict(line.split("=", 1) for line in lines)["ip"] == \
        "198.18.0.100/24"


@needs_busybox
def test_guest_settings_fall_back_to_the_kernel_cmdline(settings):
    assert settings("drover.ip=198.18.0.7/24 drover.dirty_mbps=3 *", []) == [
        "ip=198.18.0.7/24", "dirty_mbps=3"]


def test_oem_strings_and_reply_parsing():
    assert image.oem_strings("198.18.0.5/24") == [
        "drover.ip=198.18.0.5/24", "drover.dirty_mbps=0"]
    assert image.parse_reply("uptime=12.5 boot=ab-cd dirty_mbps=4\n") == {
        "uptime": "12.5", "boot": "ab-cd", "dirty_mbps": "4"}
