import subprocess

import paramiko
import pytest

from agent.common.errors import DroverError
from agent.transport import ssh
from agent.transport.errors import HostKeyRejected, HostUnreachable


@pytest.fixture
def host_key(tmp_path):
    path = tmp_path / "host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(path)], check=True)
    return path


def test_fingerprint_is_the_one_openssh_shows(host_key):
    shown = subprocess.run(["ssh-keygen", "-l", "-f", str(host_key)],
                           check=True, capture_output=True, text=True)
    openssh = shown.stdout.split()[1]           # "SHA256:..."
    key = paramiko.PKey.from_path(host_key)
    assert ssh.fingerprint(key) == f"ssh-ed25519 {openssh}"


def test_unknown_keys_are_refused_naming_host_and_key(host_key, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    policy = ssh._RefuseUnknown("host1", str(known_hosts))
    key = paramiko.PKey.from_path(host_key)
    with pytest.raises(HostKeyRejected) as err:
        policy.missing_host_key(client, "198.18.200.2", key)
    assert isinstance(err.value, HostUnreachable)
    assert str(err.value) == (
        f"host key of host1 (198.18.200.2) is not in {known_hosts}: "
        f"refusing {ssh.fingerprint(key)}")
    assert known_hosts.read_text() == ""        # nothing learnt


@pytest.fixture
def ssh_conf():
    from agent.conf import CONF
    names = []

    def override(name, value):
        CONF.set_override(name, value, group="ssh")
        names.append(name)

    yield override
    for name in names:
        CONF.clear_override(name, group="ssh")


def test_a_missing_private_key_is_one_clear_line(ssh_conf, tmp_path):
    ssh_conf("private_key", str(tmp_path / "id_none"))
    with pytest.raises(DroverError,
                       match=r"^cannot read SSH private key .*id_none"):
        ssh.connect("host1", "198.18.200.2", 22)


def test_a_missing_known_hosts_file_refuses_the_host(ssh_conf, host_key,
                                                      tmp_path):
    ssh_conf("private_key", str(host_key))
    # Refused before any connection is attempted.
    ssh_conf("known_hosts", str(tmp_path / "nowhere"))
    with pytest.raises(HostKeyRejected,
                       match=r"^cannot check the host key of host1: "
                             r".*nowhere: No such file"):
        ssh.connect("host1", "198.18.200.2", 22)
