"""Bridge stdin/stdout to the agent's RPC socket, byte for byte.

The controller runs this over SSH (``drover-agent relay``).  When stdin
ends, the socket's sending side is shut down and replies still due are
passed on until the agent closes; when the agent or stdout goes away, the
relay exits.
"""
import argparse
import os
import select
import socket
import sys

CHUNK = 65536


def _parse(argv):
    parser = argparse.ArgumentParser(
        prog="drover-agent relay",
        description="Bridge stdin/stdout to the drover agent's RPC socket.")
    parser.add_argument("--socket", metavar="PATH",
                        help="Agent socket (default: [agent] socket_path).")
    parser.add_argument("--config-file", action="append", default=[],
                        metavar="PATH", help="drover.conf to read "
                        "(repeatable).")
    return parser.parse_args(argv)


def _socket_path(args):
    if args.socket:
        return args.socket
    from agent import conf
    conf.load([f"--config-file={p}" for p in args.config_file])
    return conf.CONF.agent.socket_path


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def bridge(in_fd, out_fd, sock):
    """Copy ``in_fd`` to ``sock`` and ``sock`` to ``out_fd`` until done."""
    readers = [in_fd, sock]
    while sock in readers:
        for ready in select.select(readers, [], [])[0]:
            if ready is sock:
                data = sock.recv(CHUNK)
                if not data:
                    return
                _write_all(out_fd, data)
                continue
            data = os.read(in_fd, CHUNK)
            if data:
                sock.sendall(data)
            else:
                sock.shutdown(socket.SHUT_WR)
                readers.remove(in_fd)


def main(argv=None):
    args = _parse(sys.argv[1:] if argv is None else argv)
    path = _socket_path(args)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as err:
        print(f"drover-agent relay: cannot connect to the agent at {path}: "
              f"{err.strerror or err}", file=sys.stderr)
        return 1
    try:
        bridge(sys.stdin.fileno(), sys.stdout.fileno(), sock)
    except OSError:
        pass    # one side went away: that ends the relay
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
