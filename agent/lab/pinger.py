"""Pings from inside a lab host, every 100 ms, until stopped: how many
replies a guest lost while it moved."""
import os
import re
import signal
import subprocess
import time

from agent.common.errors import DroverError

_SEQ = re.compile(r"icmp_seq=(\d+)")
_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) received")


class Pinger:
    """From inside lab host ``from_host``, or from the root namespace (on
    the lab's bridge) when it is None."""

    def __init__(self, lab, from_host, address, interval=0.1):
        argv = ["ping", "-n", "-i", str(interval), "-W", "1", address]
        if from_host is not None:
            argv = lab.host_argv(from_host, argv)
        self.interval = interval
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True)
        self.sent = self.received = self.longest_gap = None
        self.first_seq = self.last_seq = None

    def stop(self):
        time.sleep(1.5)         # replies to the last pings
        os.killpg(self.proc.pid, signal.SIGINT)     # nsenter and ping
        out, _ = self.proc.communicate(timeout=10)
        found = _SUMMARY.search(out)
        if not found:
            raise DroverError(f"ping gave no summary: {out.strip()[-200:]}")
        self.sent, self.received = int(found[1]), int(found[2])
        seqs = sorted(int(n) for n in _SEQ.findall(out))
        gaps = [b - a - 1 for a, b in zip(seqs, seqs[1:], strict=False)]
        self.longest_gap = max(gaps, default=0)
        self.first_seq = seqs[0] if seqs else None
        self.last_seq = seqs[-1] if seqs else None
        return self

    @property
    def longest_gap_ms(self):
        """The longest time without a reply, in pings' worth: an upper
        bound of the guest's downtime as the network saw it."""
        return round((self.longest_gap + 1) * self.interval * 1000) \
            if self.longest_gap else 0

    @property
    def lost(self):
        return self.sent - self.received

    def __str__(self):
        return (f"{self.sent} sent, {self.lost} lost (longest gap "
                f"{self.longest_gap}, replies to seq {self.first_seq}.."
                f"{self.last_seq})")
