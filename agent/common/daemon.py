"""Logging of the daemons: to stderr (journald under systemd)."""
import logging
import sys


def setup(conf):
    logging.basicConfig(
        level=logging.DEBUG if conf.debug else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("paramiko").setLevel(logging.WARNING)
