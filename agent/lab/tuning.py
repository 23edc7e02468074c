"""Machine settings lab hosts need, restored when the last lab goes down.

- ``/dev/kvm`` readable by the QEMU user: otherwise libvirtd re-probes QEMU
  every few seconds and each guest start takes seconds.
- ``vm.unprivileged_userfaultfd = 1``: post-copy live migration.

Several labs may run at once, so the original values and the labs holding
the settings are kept in one record; the last lab to leave restores them.
"""
import contextlib
import fcntl
import json
import os
import stat

RECORD = "/run/drover-lab-tuning.json"
KVM = "/dev/kvm"
UFFD = "/proc/sys/vm/unprivileged_userfaultfd"


def _read(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def _write(path, data):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def _get_sysctl():
    with open(UFFD) as f:
        return f.read().strip()


def _set_sysctl(value):
    with open(UFFD, "w") as f:
        f.write(value)


def _kvm_mode():
    try:
        return stat.S_IMODE(os.stat(KVM).st_mode)
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def _locked(record):
    with open(record + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def acquire(holder, record=RECORD):
    """Apply the settings for ``holder`` (a lab directory)."""
    with _locked(record):
        _acquire(holder, record)


def _acquire(holder, record):
    data = _read(record)
    if data is None:
        data = {"kvm_mode": _kvm_mode(), "uffd": _get_sysctl(), "holders": []}
    if holder not in data["holders"]:
        data["holders"].append(holder)
    _write(record, data)
    if data["kvm_mode"] is not None:
        os.chmod(KVM, 0o666)
    _set_sysctl("1")


def release(holder, still_up, record=RECORD):
    """Drop ``holder``; restore the settings if no lab still holds them.

    ``still_up(lab_dir)`` tells whether another holder's lab still runs
    (a lab that crashed without ``down`` must not pin the settings).
    """
    with _locked(record):
        _release(holder, still_up, record)


def _release(holder, still_up, record):
    data = _read(record)
    if data is None:
        return
    data["holders"] = [h for h in data["holders"]
                       if h != holder and still_up(h)]
    if data["holders"]:
        _write(record, data)
        return
    if data["kvm_mode"] is not None:
        os.chmod(KVM, data["kvm_mode"])
    _set_sysctl(data["uffd"])
    os.unlink(record)
