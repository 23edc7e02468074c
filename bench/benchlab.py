"""A lab of its own for a benchmark, with drover running on it.

    with bench_fleet("dbench", "198.18.96.0/24", hosts=2) as (lab, socket):
        ...

Takes the lab down at the end, whatever happens.
"""
import contextlib
import os
import subprocess
import sys
import tempfile

from agent.conf import CONF
from agent.lab import fleet
from agent.lab.image import build_image
from agent.lab.lab import Lab
from agent.transport.local import LocalClient

DROVER = [sys.executable, "-m", "agent.cli.main"]


@contextlib.contextmanager
def bench_fleet(name, network, hosts=2, controllers=None, database=None,
                controller_options=None):
    """``controllers``, ``database``: as drover lab up's --controllers and
    --database (default one controller on SQLite).  ``controller_options``:
    a function of the lab giving options for the controller's
    configuration ({group: {name: value}})."""
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as tmp:
        lab = Lab(os.path.join(tmp, "lab"), name, network)
        try:
            lab.up(hosts)
            fleet.choose(lab, controllers, database)
            image = build_image(os.environ.get("DROVER_LAB_CACHE",
                                               CONF.lab.cache_dir))
            options = controller_options(lab) if controller_options \
                else None
            yield lab, fleet.start(lab, image, progress=lambda m: None,
                                   controller_options=options)
        finally:
            fleet.down(lab, progress=lambda m: None)


def drover(socket, *args):
    """Run the drover CLI; stdout, or an exception with its stderr."""
    proc = subprocess.run(DROVER + ["--controller-socket", socket, *args],
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"drover {' '.join(args)}: {proc.stderr}")
    return proc.stdout


def api(socket, method, **params):
    with LocalClient(socket, timeout=300) as client:
        return client.call(method, **params)
