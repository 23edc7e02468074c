"""API: live migration, its abort and force-complete, host drain.

(Placeholder while issue 5 is built: every method refuses clearly.)"""
from agent.common.errors import DroverError


def start(svc, name, host=None, block=None):
    raise DroverError("live migration is not available yet")


METHODS = {}
