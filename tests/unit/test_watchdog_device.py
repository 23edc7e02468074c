"""The watchdog device the agent feeds: fed while healthy, disarmed on a
clean stop (a regular file stands in for /dev/watchdog)."""
import threading

from agent.common import systemd
from agent.host.watchdog_device import WatchdogDevice


def test_fed_then_disarmed_with_the_magic_close(tmp_path):
    path = tmp_path / "watchdog"
    path.write_bytes(b"")
    device = WatchdogDevice(str(path))
    device.feed()
    device.feed()
    device.close()
    assert path.read_bytes() == b"\0\0V"
    device.close()                  # twice: nothing more


def test_a_missing_device_is_not_fed(tmp_path):
    device = WatchdogDevice(str(tmp_path / "none"))
    assert device.fd is None
    device.feed()
    device.close()


def test_no_device_configured():
    assert WatchdogDevice("").fd is None


def test_health_is_checked_for_the_device_outside_systemd(monkeypatch):
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    checked, stop = threading.Event(), threading.Event()
    thread = systemd.start_watchdog(lambda: checked.set() or True, stop,
                                    interval=0.01)
    assert checked.wait(2)
    stop.set()
    thread.join(2)
    assert systemd.start_watchdog(lambda: True, stop) is None
