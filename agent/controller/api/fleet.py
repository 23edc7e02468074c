"""API: the fleet as a whole.

``fleet.audit``: does the database match what the hosts run and hold?
(agent.controller.audit; it changes nothing.)"""
from agent.controller import audit


def fleet_audit(svc):
    """The audit's findings (kind, host, instance, detail); [] when the
    fleet matches the database."""
    return audit.run(svc.store, svc.hosts)


METHODS = {
    "fleet.audit": fleet_audit,
}
