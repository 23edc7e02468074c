"""Small programs run inside a lab host (``python -m agent.lab.keeper``).

``keep``: the host's init, PID 1 of its PID namespace.  It reaps orphans
(the machine's own PID 1 may not) and exits on SIGTERM; when it exits the
kernel kills every process of the host.

``spawn LOG ARGV...``: start ARGV as a daemon of the host, in a session of
its own, output appended to LOG, and print its PID.  Its parent exits at
once, so the daemon becomes a child of the keeper, which reaps it.
"""
import os
import shutil
import sys
import time


def keep():
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        try:
            os.wait()
        except ChildProcessError:
            time.sleep(1)


def spawn(log, argv):
    if not shutil.which(argv[0]):
        print(f"{argv[0]}: command not found", file=sys.stderr)
        return 127
    pid = os.fork()
    if pid:
        print(pid)
        return 0
    os.setsid()
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.execvp(argv[0], argv)


def main(argv):
    if argv[:1] == ["keep"]:
        return keep()
    if argv[:1] == ["spawn"] and len(argv) >= 3:
        return spawn(argv[1], argv[2:])
    print("usage: keeper keep | keeper spawn LOG ARGV...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
