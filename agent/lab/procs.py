"""Processes by PID, checked against their start time so a recycled PID is
never mistaken for (or killed as) a lab process."""
import os
import signal
import time


def start_time(pid):
    """Kernel start time of ``pid`` (clock ticks since boot), or None if it
    does not exist or is a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:                  # gone, or going
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def identify(pid):
    """A record {"pid", "start"} for a live process."""
    return {"pid": pid, "start": start_time(pid)}


def alive(record):
    return bool(record) and record.get("start") is not None and \
        start_time(record["pid"]) == record["start"]


def _reap(pid):
    """Collect ``pid`` if it is our child; harmless otherwise."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop(records, timeout=5.0):
    """SIGTERM each live record, SIGKILL what is left after ``timeout``,
    and wait until all are gone (reaping our own children)."""
    live = [r for r in records if alive(r)]
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        for r in live:
            try:
                os.kill(r["pid"], sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while live and time.monotonic() < deadline:
            for r in live:
                _reap(r["pid"])
            live = [r for r in live if alive(r)]
            if live:
                time.sleep(0.02)
        if not live:
            return
    raise RuntimeError(f"processes would not die: {[r['pid'] for r in live]}")


def children(pid):
    """PIDs of the direct children of ``pid``."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def ns_inode(pid, kind):
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def pids_in_namespace(kind, inode):
    """PIDs (as this namespace sees them) of processes in the ``kind``
    namespace with ``inode``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and ns_inode(entry, kind) == inode:
            found.append(int(entry))
    return found


def outer_pid(ns_member_pid, inner_pid):
    """Translate ``inner_pid``, a PID inside the PID namespace of
    ``ns_member_pid``, into this namespace's PID (via NSpid)."""
    inode = ns_inode(ns_member_pid, "pid")
    for pid in pids_in_namespace("pid", inode):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("NSpid:"):
                        if int(line.split()[-1]) == inner_pid:
                            return pid
                        break
        except OSError:
            continue
    return None
