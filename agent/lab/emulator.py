"""The QEMU the lab's hosts run: QEMU 10 from bookworm-backports, not
Debian 12's own QEMU 7.2 (``[lab] qemu``).

Why: the lab's guests run under TCG (no usable KVM here), and QEMU before
9.0 loses dirty pages when it live-migrates a TCG guest.  Its migration
bitmap sync clears the dirty bits of 64 pages at a time without re-arming
the TCG TLB's not-dirty marks, so a page the guest keeps writing through a
cached TLB entry after a sync is never sent again; the guest then runs on
the destination with stale kernel data and crashes (seen in the lab: a
fault in the kernel's timer code after 4 to 9 live migrations of a guest
dirtying memory).  Upstream fixed it in QEMU 9.0 (commit 03bfc2188f061,
"physmem: Fix migration dirty bitmap coherency with TCG memory access");
Debian 12's 7.2 never took the fix.  KVM hosts are not affected: the
kernel tracks their dirty pages.

How: the packages are downloaded and unpacked into the lab cache (the
machine's own packages are untouched), and a small wrapper that runs them
is bind-mounted over /usr/bin/qemu-system-x86_64 inside each lab host, so
the host's libvirtd runs QEMU 10 while the machine keeps its own QEMU.
"""
import os
import pathlib

from agent.common import process
from agent.lab import debs

SUITE = "bookworm-backports"
PACKAGES = ("qemu-system-x86", "qemu-system-common", "qemu-system-data",
            "seabios")
BINARY = "/usr/bin/qemu-system-x86_64"
# QEMU loads its modules (display, audio, block drivers) from here too,
# and aborts on one from another build: the lab's own are mounted over it.
MODULES = "/usr/lib/x86_64-linux-gnu/qemu"
SYSTEM = "system"
BACKPORTS = "backports"


def wrapper(cache_dir, choice):
    """The path of a script that runs the lab's QEMU, to bind-mount over
    BINARY in every lab host (and ``modules(script)`` over MODULES); None
    for the machine's own QEMU."""
    if choice == SYSTEM:
        return None
    cache = pathlib.Path(cache_dir) / "qemu-backports"
    cache.mkdir(parents=True, exist_ok=True)
    root = cache / "root"
    script = cache / "qemu-system-x86_64"
    with debs.locked(cache / ".lock"):
        found = debs.download(cache, PACKAGES, suite=SUITE)
        stamp = cache / "root.from"
        want = "\n".join(sorted(p.name for p in found.values())) + "\n"
        if not stamp.exists() or stamp.read_text() != want:
            process.run(["rm", "-rf", str(root)])
            for deb in found.values():
                debs.unpack(deb, root)
            stamp.write_text(want)
        script.write_text(_script(root))
        script.chmod(0o755)
    _readable_by_qemu(root)
    return str(script)


def modules(script):
    """The module directory of the QEMU that ``script`` runs."""
    return str(pathlib.Path(script).parent / "root" / MODULES.lstrip("/"))


def version(script):
    """``QEMU emulator version ...``: the first line of ``--version``."""
    return process.run([script, "--version"]).splitlines()[0]


def _script(root):
    share = root / "usr" / "share"
    return ("#!/bin/sh\n"
            "# The lab's QEMU (agent/lab/emulator.py says why).\n"
            f"exec {root}/usr/bin/qemu-system-x86_64 -L {share}/qemu "
            f"-L {share}/seabios \"$@\"\n")


def _readable_by_qemu(root):
    """libvirt runs QEMU as its own user: every directory above the
    unpacked tree must let it through."""
    path = pathlib.Path(root)
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            os.chmod(parent, mode | 0o001)
