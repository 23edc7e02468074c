"""Agents reached on local UNIX sockets instead of SSH: what a simulated
fleet (agent.sim.rpc_fleet) uses so that the controller's real client
(agent.transport.ssh.AgentClient: ids, timeouts, events, lost links)
drives hundreds of agents without an sshd each.

``UnixConnections(directory)`` stands in for ssh.CONNECTIONS: host
address A is the socket ``directory/A.sock``, and a "session" is a
connection to it, as if the agent relay had been started on the host
(the relay is what connects an SSH channel to the agent's socket).  What
it leaves out: SSH itself (authentication, host keys, encryption and
its CPU, keepalives), TCP, and the relay process; SFTP uploads.
"""
import os
import socket

from agent.transport.errors import HostUnreachable


class UnixChannel:
    """The part of a paramiko Channel AgentClient uses, over a socket."""

    def __init__(self, path):
        self.path = path
        self.closed = False
        self.eof_received = False
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def exec_command(self, command):
        """Connect to the agent's socket (the relay's job)."""
        self._sock.connect(self.path)

    def sendall(self, data):
        self._sock.sendall(data)

    def recv(self, size):
        try:
            data = self._sock.recv(size)
        except OSError:
            if self.closed:
                return b""
            raise
        if not data:
            self.eof_received = True
        return data

    def exit_status_ready(self):
        return self.eof_received or self.closed

    def recv_exit_status(self):
        return 0

    def recv_stderr_ready(self):
        return False

    def close(self):
        if self.closed:
            return
        self.closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()


class UnixTransport:
    def __init__(self, path):
        self.path = path

    def is_active(self):
        return True

    def open_session(self, timeout=None):
        return UnixChannel(self.path)


class UnixConnections:
    """ssh.SSHConnections' interface; address -> ``directory/ADDRESS.sock``."""

    def __init__(self, directory):
        self.directory = directory

    def path(self, address):
        return os.path.join(self.directory, f"{address}.sock")

    def acquire(self, address, port):
        pass

    def release(self, address, port):
        pass

    def transport(self, host, address, port, *, fresh=False):
        path = self.path(address)
        if not os.path.exists(path):
            raise HostUnreachable(f"cannot connect to {host} ({path}): no "
                                  "agent socket")
        return UnixTransport(path)

    def close_all(self):
        pass
