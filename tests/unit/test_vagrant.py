"""vagrant/: the Vagrantfile is valid and the provisioning scripts parse."""
import pathlib
import shutil
import subprocess

import pytest

VAGRANT = pathlib.Path(__file__).resolve().parents[2] / "vagrant"


@pytest.mark.skipif(not shutil.which("vagrant"),
                    reason="vagrant is not installed")
def test_vagrantfile_validates():
    proc = subprocess.run(["vagrant", "validate"], cwd=VAGRANT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (VAGRANT / ".keys").exists() or \
        not any((VAGRANT / ".keys").iterdir()), "validate must not make keys"


@pytest.mark.parametrize("script", ["provision-host.sh",
                                    "provision-fleet.sh"])
def test_provisioning_scripts_parse(script):
    proc = subprocess.run(["bash", "-n", str(VAGRANT / script)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
