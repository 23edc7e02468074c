"""The controller's local API: method name -> function(services, **params).

The CLI reaches it on [controller] socket_path (JSON lines, the same
protocol as the agents')."""
from agent.controller.api import (evacuate, fleet, ha, hosts, inventory,
                                  live, migrations, servers)


def register(server, services):
    for table in (hosts.METHODS, inventory.METHODS, servers.METHODS,
                  migrations.METHODS, live.METHODS, fleet.METHODS,
                  evacuate.METHODS, ha.METHODS):
        for name, fn in table.items():
            server.register(name, _bind(fn, services))


def _bind(fn, services):
    def method(**params):
        return fn(services, **params)
    method.__name__ = getattr(fn, "__name__", "method")
    return method
