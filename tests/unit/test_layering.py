"""Layers point down: the controller, the transport and the CLI never load
libvirt nor the agent's own layers (agent.host, agent.hypervisor)."""
import json
import subprocess
import sys

# Runs in a fresh interpreter: this test process has long imported
# everything.  ``sys.modules['libvirt'] = None`` makes any import of
# libvirt fail at once, wherever it hides.
PROBE = r"""
import importlib, json, pkgutil, sys
sys.modules["libvirt"] = None
import agent.controller
import agent.controller.daemon
import agent.cli.main
for info in pkgutil.walk_packages(agent.controller.__path__,
                                  "agent.controller."):
    if info.name != "agent.controller.db.migrations.env":  # alembic's only
        importlib.import_module(info.name)
for name in agent.cli.main.VERB_MODULES:
    importlib.import_module(name)
import agent.transport.ssh, agent.transport.local, agent.transport.diskcopy
print(json.dumps(sorted(sys.modules)))
"""

FORBIDDEN = ("agent.host", "agent.hypervisor")


def test_controller_cli_and_transport_do_not_import_the_agent_layers():
    run = subprocess.run([sys.executable, "-c", PROBE],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr.strip().splitlines()[-1:]
    loaded = json.loads(run.stdout)
    below = [name for name in loaded
             if name.split(".")[:2] in [f.split(".") for f in FORBIDDEN]]
    assert below == []
    assert "agent.controller.ops.live_migrate" in loaded   # walked them all
