"""What both daemons do around their work: log to stderr (journald under
systemd), and turn an error a user can act on into one line and a
non-zero exit."""
import logging
import sys

from agent.common.errors import DroverError


def run(load, serve, name):
    """``load()`` the configuration (exit 2 on a bad one), then serve."""
    try:
        conf = load()
    except DroverError as err:
        print(f"{name}: {err}", file=sys.stderr)
        return err.exit_code
    logging.basicConfig(
        level=logging.DEBUG if conf.debug else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("paramiko").setLevel(logging.WARNING)
    try:
        return serve()
    except DroverError as err:
        logging.getLogger(name).error("%s", err)
        return 1
