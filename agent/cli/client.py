"""The CLI's connection to the controller's local API (a UNIX socket).

With standby controllers (PostgreSQL) the socket may be a standby's: it
names the leader's socket, and the CLI goes there.  When it cannot, every
call is answered with NotLeader, one line saying where the leader is."""
import contextlib
import os

from agent.common.errors import DroverError


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


def _to_leader(client):
    """``client``, or a client of the leader when ``client``'s controller
    is a standby whose leader's socket can be reached from here."""
    try:
        who = client.call("controller.leader")
    except DroverError:
        return client
    address = ((who or {}).get("leader") or {}).get("address")
    if who.get("role") != "standby" or not address or \
            address == client.path:
        return client
    try:
        leader = _open(address)
    except DroverError:
        return client           # its calls say where the leader is
    client.close()
    return leader


@contextlib.contextmanager
def connect(args):
    client = _to_leader(_open(socket_path(args)))
    try:
        yield client
    finally:
        client.close()
