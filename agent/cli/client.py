"""The CLI's connection to the controller's local API (a UNIX socket).

With standby controllers (PostgreSQL) the socket may be a standby's: it
answers every call with NotLeader (having done nothing), names the
leader's socket, and the CLI goes there and asks again.  When it cannot,
the NotLeader stands: one line saying where the leader is.  Asked only
when refused, so a call to the leader costs no extra round trip."""
import contextlib
import os

from agent.common.errors import DroverError, NotLeader


def socket_path(args):
    explicit = (getattr(args, "controller_socket", None)
                or os.environ.get("DROVER_CONTROLLER_SOCKET"))
    if explicit:
        return explicit
    from agent.cli.main import load_conf
    return load_conf(args).controller.socket_path


def _open(path):
    from agent.transport.local import LocalClient
    try:
        return LocalClient(path)
    except OSError as err:
        raise DroverError(f"cannot reach the controller at {path}: "
                          f"{err.strerror or err}; is drover-controller "
                          "running?") from None


def _leader_of(client):
    """A client of the leader when ``client``'s controller is a standby
    whose leader's socket can be reached from here; else None."""
    try:
        who = client.call("controller.leader")
    except DroverError:
        return None
    address = ((who or {}).get("leader") or {}).get("address")
    if who.get("role") != "standby" or not address or \
            address == client.path:
        return None
    try:
        return _open(address)
    except DroverError:
        return None             # its calls say where the leader is


class _Client:
    """The controller's API, followed to the leader on NotLeader."""

    def __init__(self, client):
        self._client = client

    @property
    def path(self):
        return self._client.path

    def call(self, method, /, **params):
        try:
            return self._client.call(method, **params)
        except NotLeader:
            leader = _leader_of(self._client)
            if leader is None:
                raise
        self._client.close()
        self._client = leader
        return leader.call(method, **params)

    def close(self):
        self._client.close()


@contextlib.contextmanager
def connect(args):
    client = _Client(_open(socket_path(args)))
    try:
        yield client
    finally:
        client.close()
