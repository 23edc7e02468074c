"""A synchronous client of an RPC server on a local UNIX socket (the CLI to
the controller).  One call at a time; same protocol as the agents'."""
import itertools
import socket

from agent.common.errors import DroverError
from agent.common.rpc import protocol as proto


class LocalClient:
    def __init__(self, path, timeout=None):
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(path)
        except OSError:
            self._sock.close()
            raise
        self._file = self._sock.makefile("rb")
        self._ids = itertools.count(1)

    def call(self, method, /, **params):
        call_id = next(self._ids)
        self._sock.sendall(proto.encode({"id": call_id, "method": method,
                                         "params": params}))
        while True:
            line = self._file.readline()
            if not line:
                raise DroverError(f"the controller at {self.path} closed "
                                  "the connection")
            msg = proto.decode(line)
            if msg.get("id") != call_id:
                continue            # a notification: not asked for here
            if "error" in msg:
                raise proto.error_from_body(msg["error"], DroverError)
            return msg.get("result")

    def close(self):
        self._file.close()
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
