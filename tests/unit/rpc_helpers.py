"""Helpers for the RPC tests: a short socket directory and a line client."""
import json
import shutil
import socket
import tempfile

import pytest


@pytest.fixture
def sock_dir():
    # Short: UNIX socket paths are limited to 107 bytes.
    path = tempfile.mkdtemp(prefix="dssh-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


class LineClient:
    """A raw client of the RPC socket, one JSON line at a time."""

    def __init__(self, path, timeout=5):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""

    def send(self, **message):
        self.sock.sendall(json.dumps(message).encode() + b"\n")

    def send_raw(self, data):
        self.sock.sendall(data)

    def read(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("server closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, method, call_id=1, **params):
        self.send(id=call_id, method=method, params=params)
        return self.read()

    def close(self):
        self.sock.close()
