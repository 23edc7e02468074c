"""The lab guest image: a tiny bootable qcow2 disk made from Debian packages.

The disk holds a small vfat filesystem (syslinux, the Debian cloud kernel,
a busybox initramfs running ``agent/lab/guest/init``) and, past it, a data
area that tests write through the guest and check on the host.  It is built
once into a cache directory and never committed.

    python -m agent.lab.image [--cache-dir DIR] [--force]
"""
import argparse
import gzip
import hashlib
import lzma
import math
import os
import pathlib
import re
import shutil
import sys
import tempfile

from agent.common import process
from agent.common.errors import DroverError, InvalidInput
from agent.lab import debs

MiB = 1024 * 1024
DISK_SIZE = 128 * MiB
DATA_OFFSET = 64 * MiB
DATA_SIZE = 16 * MiB
DIRTY_MAX_MBPS = 96
IMAGE_NAME = "lab-guest.qcow2"
KERNEL_METAPACKAGE = "linux-image-cloud-amd64"
BUSYBOX_PACKAGE = "busybox-static"
SEED_MAX = 999_999_999
# Built as modules in the cloud kernel: virtio disk and NIC, and the ACPI
# power button with the event device busybox acpid reads.
GUEST_MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "button", "evdev")
KERNEL_CMDLINE = "console=ttyS0 quiet"
GUEST_DIR = pathlib.Path(__file__).with_name("guest")
# Guest source file -> its path in the initramfs.
GUEST_FILES = {
    "init": "init",
    "drover-settings": "usr/bin/drover-settings",
    "drover-dirty": "usr/bin/drover-dirty",
    "pattern.awk": "usr/share/drover/pattern.awk",
    "poweroff": "etc/acpi/PWRF/00000080",
    "cgi-bin/status": "www/cgi-bin/status",
    "cgi-bin/dirty": "www/cgi-bin/dirty",
    "cgi-bin/data-write": "www/cgi-bin/data-write",
    "cgi-bin/data-read": "www/cgi-bin/data-read",
    "cgi-bin/block-read": "www/cgi-bin/block-read",
    "cgi-bin/block-write": "www/cgi-bin/block-write",
    "cgi-lib": "usr/share/drover/cgi-lib",
}
SYSLINUX_CFG = f"""DEFAULT drover
PROMPT 0
TIMEOUT 0
LABEL drover
  LINUX /vmlinuz
  INITRD /initrd.gz
  APPEND {KERNEL_CMDLINE}
"""
# Parameters of the data pattern; guest/pattern.awk uses the same ones.
_PATTERN_CHUNK = 64 * 1024
_PATTERN_STRIDE = 277
_PATTERN_WORDS = 34 * 512
_MINSTD = 2147483647


def build_image(cache_dir, force=False):
    """Build ``cache_dir/lab-guest.qcow2`` unless it is there; return its path.

    A stamp beside the image records what it was built from (this module
    and the guest scripts); an image with another stamp is rebuilt.
    """
    cache = pathlib.Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    image = cache / IMAGE_NAME
    stamp = cache / (IMAGE_NAME + ".inputs")
    with debs.locked(cache / ".lab-guest.lock"):
        if not force and image.exists() and _stamp_matches(stamp):
            return image
        kernel_pkg = kernel_package()
        found = debs.download(cache, [kernel_pkg, BUSYBOX_PACKAGE])
        work = pathlib.Path(tempfile.mkdtemp(prefix=".build-", dir=cache))
        try:
            tmp_image = _build(work, found[kernel_pkg],
                               found[BUSYBOX_PACKAGE])
            tmp_image.chmod(0o644)
            os.replace(tmp_image, image)
            stamp.write_text(_inputs_digest() + "\n")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return image


def kernel_package():
    """The versioned kernel package behind the cloud kernel metapackage."""
    out = process.run(["apt-cache", "depends", KERNEL_METAPACKAGE])
    match = re.search(r"Depends:\s*(linux-image-\S+)", out)
    if not match:
        raise DroverError(f"apt-cache: no kernel behind {KERNEL_METAPACKAGE}")
    return match.group(1)


def module_order(modules_dep, wanted):
    """Module paths (as in ``modules.dep``) to load for ``wanted``, in order.

    ``modules_dep`` is the text of depmod's modules.dep; each module comes
    after everything it needs, and only once.
    """
    deps = {}
    for line in modules_dep.splitlines():
        if ":" in line:
            path, needs = line.split(":", 1)
            deps[path.strip()] = needs.split()
    by_name = {_module_name(path): path for path in deps}
    order = []

    def visit(path, chain):
        if path in order:
            return
        if path in chain:
            raise DroverError(f"modules.dep: dependency loop at {path}")
        # modules.dep lists each module's needs nearest first: load the
        # farthest first.
        for need in reversed(deps.get(path, [])):
            visit(need, chain + (path,))
        order.append(path)

    for name in wanted:
        path = by_name.get(name.replace("-", "_"))
        if path is None:
            raise DroverError(f"modules.dep: no module {name}")
        visit(path, ())
    return order


def oem_strings(ip, hostname=None, gateway=None, dirty_mbps=0):
    """SMBIOS OEM strings (type 11) that configure one lab guest."""
    strings = [f"drover.ip={ip}"]
    if gateway:
        strings.append(f"drover.gateway={gateway}")
    if hostname:
        strings.append(f"drover.hostname={hostname}")
    strings.append(f"drover.dirty_mbps={int(dirty_mbps)}")
    return strings


def parse_reply(text):
    """A control server reply (``key=value key=value``) as a dict."""
    return dict(word.split("=", 1) for word in text.split() if "=" in word)


def data_pattern(seed):
    """The DATA_SIZE bytes the guest's ``data-write?seed=N`` writes."""
    if not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise InvalidInput(f"seed must be an integer 0..{SEED_MAX}")
    x = seed % (_MINSTD - 1) + 1
    words = []
    for _ in range(_PATTERN_WORDS):
        x = x * 48271 % _MINSTD
        words.append(f"{x:08x}")
    base = "".join(words).encode()
    return b"".join(base[c * _PATTERN_STRIDE:c * _PATTERN_STRIDE
                         + _PATTERN_CHUNK]
                    for c in range(DATA_SIZE // _PATTERN_CHUNK))


def data_pattern_sha256(seed):
    """sha256 (hex) of the data area after ``data-write?seed=N``."""
    return hashlib.sha256(data_pattern(seed)).hexdigest()


def read_data_area_sha256(disk_path, fmt="qcow2"):
    """sha256 (hex) of the data area of a stopped guest's disk."""
    if fmt not in ("qcow2", "raw"):
        raise InvalidInput(f"disk format must be qcow2 or raw, not {fmt}")
    with tempfile.TemporaryDirectory(prefix="drover-data-") as tmp:
        out = pathlib.Path(tmp) / "area"
        # A raw view of just the data area, on top of the disk's format
        # (qemu-img dd miscounts when skipping).
        filename = str(disk_path).replace(",", ",,")
        process.run(["qemu-img", "convert", "-O", "raw", "--image-opts",
                     f"driver=raw,offset={DATA_OFFSET},size={DATA_SIZE},"
                     f"file.driver={fmt},file.file.filename={filename}", out])
        data = out.read_bytes()
    if len(data) != DATA_SIZE:
        raise DroverError(f"{disk_path}: data area is short "
                          f"({len(data)} of {DATA_SIZE} bytes)")
    return hashlib.sha256(data).hexdigest()


def _module_name(path):
    name = os.path.basename(path)
    for suffix in (".xz", ".zst", ".gz"):
        name = name.removesuffix(suffix)
    return name.removesuffix(".ko").replace("-", "_")


def _inputs_digest():
    digest = hashlib.sha256(pathlib.Path(__file__).read_bytes())
    for name in sorted(GUEST_FILES):
        digest.update(name.encode() + b"\0")
        digest.update((GUEST_DIR / name).read_bytes())
    return digest.hexdigest()


def _stamp_matches(stamp):
    return stamp.exists() and stamp.read_text().strip() == _inputs_digest()


def _build(work, kernel_deb, busybox_deb):
    """Build the image under ``work``; return the qcow2 file."""
    root = work / "unpacked"
    process.run(["dpkg-deb", "-x", kernel_deb, root])
    process.run(["dpkg-deb", "-x", busybox_deb, root])
    vmlinuz = next((root / "boot").glob("vmlinuz-*"))
    version = vmlinuz.name.removeprefix("vmlinuz-")
    initrd = work / "initrd.gz"
    _make_initramfs(work / "initramfs", initrd, root, version)
    cfg = work / "syslinux.cfg"
    cfg.write_text(SYSLINUX_CFG)
    raw = work / "disk.raw"
    _make_boot_disk(raw, [(vmlinuz, "vmlinuz"), (initrd, "initrd.gz"),
                          (cfg, "syslinux.cfg")])
    qcow2 = work / "disk.qcow2"
    process.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw,
                 qcow2])
    return qcow2


def _make_initramfs(stage, out, root, version):
    """Write the gzip'd newc cpio: busybox, modules, guest scripts."""
    for sub in ("bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev",
                "run", "tmp", "etc/drover", "lib/modules"):
        (stage / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "bin/busybox", stage / "bin/busybox")
    for src, dest in GUEST_FILES.items():
        target = stage / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(GUEST_DIR / src, target)
        target.chmod(0o644 if src.endswith(".awk") else 0o755)

    moddir = root / "lib/modules" / version
    process.run(["depmod", "-b", root, version])
    names = []
    for path in module_order((moddir / "modules.dep").read_text(),
                             GUEST_MODULES):
        name = _module_name(path)
        _copy_module(moddir / path, stage / "lib/modules" / f"{name}.ko")
        names.append(name)
    (stage / "etc/drover/modules").write_text("\n".join(names) + "\n")
    (stage / "etc/drover/image.conf").write_text(
        f"DATA_OFFSET={DATA_OFFSET}\nDATA_SIZE={DATA_SIZE}\n"
        f"DIRTY_MAX_MBPS={DIRTY_MAX_MBPS}\n")

    entries = sorted(str(p.relative_to(stage)) for p in stage.rglob("*"))
    cpio = stage.with_suffix(".cpio")
    process.run(["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0",
                 "-O", cpio], cwd=stage, input="\n".join(entries) + "\n")
    out.write_bytes(gzip.compress(cpio.read_bytes(), mtime=0))


def _copy_module(src, dest):
    """Copy a kernel module, decompressing it (busybox insmod wants .ko)."""
    if src.suffix == ".xz":
        dest.write_bytes(lzma.decompress(src.read_bytes()))
    elif src.suffix == ".ko":
        shutil.copyfile(src, dest)
    else:
        raise DroverError(f"{src.name}: unsupported module compression")


def _make_boot_disk(raw, files):
    """A raw disk: a small syslinux vfat first, zeros up to DISK_SIZE."""
    payload = sum(src.stat().st_size for src, _ in files)
    # Room for syslinux's own files, FATs and directories.
    fat_kib = math.ceil((payload * 1.05 + 2 * MiB) / MiB) * 1024
    if fat_kib * 1024 > DATA_OFFSET:
        raise DroverError(f"boot filesystem ({fat_kib} KiB) would overlap "
                          "the data area")
    process.run(["mkfs.vfat", "-C", "-n", "DROVER", raw, fat_kib])
    process.run(["syslinux", "--install", raw])
    for src, name in files:
        process.run(["mcopy", "-o", "-i", raw, src, f"::{name}"])
    os.truncate(raw, DISK_SIZE)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m agent.lab.image",
        description="Build the lab guest image (cached).")
    parser.add_argument("--cache-dir", default=default_cache_dir(),
                        help="cache directory (default: %(default)s)")
    parser.add_argument("--force", action="store_true",
                        help="rebuild even if the image is cached")
    args = parser.parse_args(argv)
    try:
        print(build_image(args.cache_dir, force=args.force))
    except DroverError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


def default_cache_dir():
    from agent.conf import CONF
    return os.environ.get("DROVER_LAB_CACHE") or CONF.lab.cache_dir


if __name__ == "__main__":
    sys.exit(main())
