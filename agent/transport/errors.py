"""Failures of the controller's link to an agent."""
from agent.common.errors import DroverError


class HostUnreachable(DroverError):
    """The host's agent cannot be reached (network, SSH, relay)."""


class HostKeyRejected(HostUnreachable):
    """The host's SSH key is unknown or differs from known_hosts."""


class CallTimeout(HostUnreachable):
    """No reply in time; the call may still be running on the host."""


class AgentError(DroverError):
    """The agent failed unexpectedly (its "InternalError")."""
