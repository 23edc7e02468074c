"""vagrant/: the Vagrantfile is valid, the provisioning scripts parse, and
vagrant's own state never lands in the source tree."""
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
VAGRANT = ROOT / "vagrant"
STATE = ("vagrant/.vagrant", "vagrant/.keys")


@pytest.mark.skipif(not shutil.which("vagrant"),
                    reason="vagrant is not installed")
def test_vagrantfile_validates(tmp_path):
    # vagrant writes .vagrant/ beside the Vagrantfile: validate a copy.
    copy = tmp_path / "vagrant"
    shutil.copytree(VAGRANT, copy,
                    ignore=shutil.ignore_patterns(".vagrant", ".keys"))
    proc = subprocess.run(["vagrant", "validate"], cwd=copy,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (copy / ".keys").exists(), "validate must not make keys"


def _git(*args):
    return subprocess.run(["git", "-C", str(ROOT), *args],
                          capture_output=True, text=True)


@pytest.mark.skipif(not (ROOT / ".git").exists() or not shutil.which("git"),
                    reason="not a git checkout")
def test_vagrant_state_is_ignored_and_not_tracked():
    tracked = _git("ls-files", "--", *STATE)
    assert tracked.returncode == 0, tracked.stderr
    assert tracked.stdout == "", f"generated files in git:\n{tracked.stdout}"
    for path in STATE:
        ignored = _git("check-ignore", "-q", "--no-index", f"{path}/x")
        assert ignored.returncode == 0, f"{path}/ is not git-ignored"


@pytest.mark.parametrize("script", ["provision-host.sh",
                                    "provision-fleet.sh"])
def test_provisioning_scripts_parse(script):
    proc = subprocess.run(["bash", "-n", str(VAGRANT / script)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
