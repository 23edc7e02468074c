"""Configuration files of lab hosts."""
from agent.lab import config
from agent.lab.plan import make_plan

PLAN = make_plan("drvt", "198.18.64.0/24")
HOSTS = PLAN.hosts(2)


def _settings(text):
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def test_libvirtd_listens_on_plain_tcp_with_its_own_uuid():
    conf = _settings(config.libvirtd_conf(HOSTS[1]))
    assert conf["host_uuid"] == f'"{HOSTS[1].host_uuid}"'
    assert conf["listen_tcp"] == "1"
    assert conf["listen_tls"] == "0"    # else libvirtd wants a CA
    assert conf["auth_tcp"] == '"none"'
    assert conf["listen_addr"] == '"198.18.64.12"'


def test_qemu_migrates_to_the_host_address():
    conf = _settings(config.qemu_conf(HOSTS[0]))
    assert conf["migration_host"] == '"198.18.64.11"'


def test_sshd_takes_keys_only_on_the_host_address():
    text = config.sshd_config(HOSTS[0], "/lab/h1/key")
    lines = set(text.splitlines())
    assert "ListenAddress 198.18.64.11" in lines
    assert "HostKey /lab/h1/key" in lines
    assert "PasswordAuthentication no" in lines
    assert "PermitRootLogin prohibit-password" in lines


def test_hosts_file_names_every_host():
    text = config.hosts_file(PLAN, HOSTS)
    assert "198.18.64.11\tdrvt-h1 h1" in text.splitlines()
    assert "198.18.64.12\tdrvt-h2 h2" in text.splitlines()
    assert "198.18.64.1\tdrvt-gw" in text.splitlines()


def test_resolv_conf_has_no_name_server():
    assert "nameserver" not in config.resolv_conf()


def test_known_hosts_lists_each_key_by_address_and_names():
    keys = {"drvt-h1": "ssh-ed25519 AAAA1", "drvt-h2": "ssh-ed25519 AAAA2"}
    assert config.known_hosts(HOSTS, keys).splitlines() == [
        "198.18.64.11,drvt-h1,h1 ssh-ed25519 AAAA1",
        "198.18.64.12,drvt-h2,h2 ssh-ed25519 AAAA2"]


def test_ssh_client_config_is_strict():
    text = config.ssh_client_config(HOSTS, "/k", "/kh")
    lines = [line.strip() for line in text.splitlines()]
    assert "StrictHostKeyChecking yes" in lines
    assert "UserKnownHostsFile /kh" in lines
    assert "IdentityFile /k" in lines
    i = lines.index("Host drvt-h2 h2")
    assert lines[i + 1] == "HostName 198.18.64.12"


def test_libvirt_leases_disks_through_virtlockd_on_shared_storage():
    from agent.lab.plan import LOCKSPACE, SHARED_STORAGE
    assert _settings(config.qemu_conf(HOSTS[0]))["lock_manager"] == \
        '"lockd"'
    conf = _settings(config.qemu_lockd_conf(LOCKSPACE))
    assert conf["auto_disk_leases"] == "1"
    assert conf["require_lease_for_disks"] == "1"
    assert conf["file_lockspace_dir"] == f'"{LOCKSPACE}"'
    assert LOCKSPACE.startswith(SHARED_STORAGE + "/")
