"""systemd service notifications (sd_notify) without a dependency.

Type=notify units get READY=1 once the daemon serves, WATCHDOG=1 pings while
it is healthy, STOPPING=1 on the way out.  Outside systemd (no
NOTIFY_SOCKET) every call does nothing.
"""
import os
import socket
import threading


def notify(state):
    """Send ``state`` (e.g. "READY=1") to systemd; False when not under it."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(addr)
        sock.sendall(state.encode())
    return True


def watchdog_interval():
    """Half the watchdog timeout systemd set for us, in seconds, or None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6


def start_watchdog(healthy, stop_event, interval=None):
    """Ping the watchdog while ``healthy()`` is true, until ``stop_event``.
    ``interval``: check at least this often (a watchdog device fed from
    ``healthy`` needs it) even outside systemd."""
    systemd_interval = watchdog_interval()
    if systemd_interval is None and interval is None:
        return None
    interval = min(i for i in (systemd_interval, interval) if i)

    def loop():
        while not stop_event.wait(interval):
            if healthy() and systemd_interval is not None:
                notify("WATCHDOG=1")
    thread = threading.Thread(target=loop, name="watchdog", daemon=True)
    thread.start()
    return thread
