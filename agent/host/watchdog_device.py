"""Feeding a Linux watchdog device (/dev/watchdog: hardware, or the
``softdog`` module) while the agent's self-fence guard is healthy.

The device resets the host when it is not written to for its timeout
(set by its driver, or ``softdog soft_margin=``).  The agent writes to
it from the same watchdog thread that pings systemd, only while its
guard has run a round lately: a hung agent, or a hung kernel, resets
the host, so its guests cannot outlive a lease that lapsed unnoticed.
On a clean stop the magic close ("V") disarms it: stopping the agent
must not reset the host.  A missing or busy device is one log line and
no feeding (systemd's WatchdogSec still restarts a hung agent).
"""
import logging
import os

LOG = logging.getLogger(__name__)


class WatchdogDevice:
    def __init__(self, path, opener=os.open):
        self.path = path
        self.fd = None
        if not path:
            return
        try:
            self.fd = opener(path, os.O_WRONLY)
            LOG.info("feeding watchdog device %s", path)
        except OSError as err:
            LOG.warning("watchdog device %s not used: %s", path, err)

    def feed(self):
        if self.fd is not None:
            os.write(self.fd, b"\0")

    def close(self):
        """Disarm (magic close) and close."""
        if self.fd is not None:
            try:
                os.write(self.fd, b"V")
            finally:
                os.close(self.fd)
                self.fd = None
