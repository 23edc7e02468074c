"""A simulated fleet for unit tests: stateful fake hosts speaking the
agent's RPC behind the controller's HostManager, with scripted faults
(agent.sim.fleet) over a physical world (agent.sim.world)."""
