"""drover's RPC, common to the agent and the controller: the JSON-lines
protocol, the server, and the agent's method table."""
