"""Live migration in the agent: pure policy (flags, downtime steps,
timeouts, monitor decisions) and the job that runs and monitors it."""
