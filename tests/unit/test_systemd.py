import socket
import threading
import time

import pytest

from agent.common import systemd


def test_notify_reaches_the_socket(tmp_path, monkeypatch):
    path = str(tmp_path / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert systemd.notify("READY=1")
    assert server.recv(100) == b"READY=1"
    server.close()


def test_notify_outside_systemd_does_nothing(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False


def test_watchdog_pings_only_while_healthy(tmp_path, monkeypatch):
    path = str(tmp_path / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    healthy = threading.Event()
    healthy.set()
    stop = threading.Event()
    systemd.start_watchdog(healthy.is_set, stop)
    assert server.recv(100) == b"WATCHDOG=1"
    healthy.clear()
    time.sleep(0.15)            # a ping decided before clear() may still come
    server.settimeout(0.01)
    try:
        while True:
            server.recv(100)
    except TimeoutError:
        pass
    server.settimeout(0.3)      # six intervals: no ping while unhealthy
    with pytest.raises(TimeoutError):
        server.recv(100)
    stop.set()
    server.close()
