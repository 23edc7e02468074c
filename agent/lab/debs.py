"""Debian packages the lab fetches for itself (never installs): ``apt-get
download`` into a cache directory, from the machine's own sources or from
a private source list (the lab's QEMU comes from bookworm-backports
without adding that suite to the machine's apt configuration)."""
import contextlib
import fcntl
import os

from agent.common import process
from agent.common.errors import DroverError


def download(cache, packages, suite=None):
    """``cache / NAME_VERSION_ARCH.deb`` of each package, downloaded
    unless there; ``suite`` (a Debian suite such as bookworm-backports)
    takes it from that suite through a private source list kept in
    ``cache / apt-SUITE``."""
    options = _private_apt(cache, suite) if suite else []
    debs = {}
    for package in packages:
        found = sorted(cache.glob(f"{package}_*.deb"))
        if not found:
            # apt warns that its _apt sandbox user cannot write here: harmless.
            process.run(["apt-get", *options, "download", package],
                        cwd=cache, timeout=600)
            found = sorted(cache.glob(f"{package}_*.deb"))
        if not found:
            raise DroverError(f"apt-get download {package}: no .deb in "
                              f"{cache}")
        debs[package] = found[-1]
    return debs


@contextlib.contextmanager
def locked(path):
    """Serialise the processes sharing a cache directory."""
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _private_apt(cache, suite):
    """apt-get options for ``suite`` alone, its lists fetched once."""
    base = cache / f"apt-{suite}"
    lists = base / "lists"
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    sources = base / "sources.list"
    sources.write_text(f"deb http://deb.debian.org/debian {suite} main\n")
    options = ["-o", f"Dir::Etc::SourceList={sources}",
               "-o", "Dir::Etc::SourceParts=/dev/null",
               "-o", f"Dir::State::Lists={lists}",
               "-o", f"Dir::Cache={base}",
               "-t", suite]
    if not any("Packages" in p.name for p in lists.iterdir()):
        process.run(["apt-get", *options[:-2], "update", "-q"], timeout=600)
    return options


def unpack(deb, root):
    """Unpack ``deb``'s files under ``root`` (no maintainer scripts)."""
    os.makedirs(root, exist_ok=True)
    process.run(["dpkg-deb", "-x", str(deb), str(root)], timeout=300)
