"""The CLI's connection to the controller's local API (a UNIX socket)."""
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


@contextlib.contextmanager
def connect(args):
    from agent.transport.local import LocalClient
    path = socket_path(args)
    try:
        client = LocalClient(path)
    except OSError as err:
        raise DroverError(f"cannot reach the controller at {path}: "
                          f"{err.strerror or err}; is drover-controller "
                          "running?") from None
    try:
        yield client
    finally:
        client.close()
