"""systemd units: the committed samples are current and systemd accepts
them without a single warning."""
import pathlib
import shutil
import subprocess

import pytest

from agent.common import units

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", units.UNITS)
def test_committed_sample_is_current(name):
    assert (ROOT / "etc" / "systemd" / name).read_text() == \
        units.render_unit(name, **units.SAMPLE)


@pytest.mark.skipif(not shutil.which("systemd-analyze"),
                    reason="systemd-analyze is not installed")
@pytest.mark.parametrize("name", units.UNITS)
def test_systemd_accepts_the_unit(tmp_path, name):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for prog in ("drover-agent", "drover-controller"):
        (bindir / prog).write_text("#!/bin/sh\n")
        (bindir / prog).chmod(0o755)
    unit = tmp_path / name
    unit.write_text(units.render_unit(name, str(bindir), str(tmp_path),
                                      str(ROOT)))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)],
                          capture_output=True, text=True)
    # verify exits 0 on unknown keys and bad values: any output is failure.
    noise = [line for line in (proc.stdout + proc.stderr).splitlines()
             if "network-online.target" not in line
             and "libvirtd.service" not in line
             and "virtqemud.service" not in line]
    assert proc.returncode == 0 and not noise, proc.stderr
