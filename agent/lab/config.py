"""Configuration files of a lab host, rendered from its plan (pure)."""
from agent.lab.plan import SSH_PORT


def libvirtd_conf(host):
    """libvirtd.conf: own host UUID, unauthenticated TCP (lab only)."""
    return (
        "# drover lab host: plain TCP, no auth; never on a real network.\n"
        f'host_uuid = "{host.host_uuid}"\n'
        "listen_tcp = 1\n"
        "listen_tls = 0\n"
        'auth_tcp = "none"\n'
        f'listen_addr = "{host.address}"\n'
        'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n'
    )


def qemu_conf(host):
    """qemu.conf: migrations go to the host's lab address, not its name;
    disks are leased through virtlockd."""
    return (
        "# drover lab host\n"
        f'migration_host = "{host.address}"\n'
        'lock_manager = "lockd"\n'
    )


def qemu_lockd_conf(lockspace_dir):
    """qemu-lockd.conf: a lease for every disk, held by the host's
    virtlockd on a file in ``lockspace_dir`` (shared by all hosts, so a
    lease taken on one host refuses the disk on every other).

    ``auto_disk_leases``: drover writes no ``<lease>`` elements, so every
    disk must get its lease automatically (named by the SHA-256 of its
    path, the same path on every host).  ``require_lease_for_disks`` only
    acts when automatic leases are off (a writable disk without a lease is
    then refused); it is set so that turning them off never lets a disk
    run unguarded.
    """
    return (
        "# drover lab host: leases on the lab's shared storage\n"
        "auto_disk_leases = 1\n"
        "require_lease_for_disks = 1\n"
        f'file_lockspace_dir = "{lockspace_dir}"\n'
    )


def sshd_config(host, host_key, pid_file="/run/sshd.pid"):
    """sshd_config: root by key only, on the host's lab address."""
    return (
        "# drover lab host\n"
        f"ListenAddress {host.address}\n"
        f"Port {SSH_PORT}\n"
        f"HostKey {host_key}\n"
        f"PidFile {pid_file}\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "UseDNS no\n"
        "PrintMotd no\n"
        "AuthorizedKeysFile .ssh/authorized_keys\n"
        "Subsystem sftp internal-sftp\n"
    )


def hosts_file(plan, hosts):
    """/etc/hosts of every lab host: localhost, the gateway, all hosts."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost",
             f"{plan.gateway}\t{plan.name}-gw"]
    lines += [f"{h.address}\t{h.name} {h.short}" for h in hosts]
    return "\n".join(lines) + "\n"


def resolv_conf():
    """resolv.conf with no name server: unknown names fail at once
    instead of stalling on a DNS server the lab cannot reach."""
    return "# drover lab: names come from /etc/hosts only\n" \
           "options timeout:1 attempts:1\n"


def known_hosts(hosts, public_keys):
    """known_hosts listing each host's key under its address and names.

    ``public_keys`` maps a host name to its ``"TYPE BASE64"`` key.
    """
    return "".join(
        f"{h.address},{h.name},{h.short} {public_keys[h.name]}\n"
        for h in hosts)


def ssh_client_config(hosts, identity, known_hosts_path, user="root"):
    """ssh_config for reaching lab hosts by name with strict host keys."""
    out = []
    for h in hosts:
        out += [f"Host {h.name} {h.short}", f"    HostName {h.address}"]
    out += ["Host *",
            f"    User {user}",
            f"    IdentityFile {identity}",
            "    IdentitiesOnly yes",
            f"    UserKnownHostsFile {known_hosts_path}",
            "    GlobalKnownHostsFile /dev/null",
            "    StrictHostKeyChecking yes",
            "    BatchMode yes",
            "    ConnectTimeout 5"]
    return "\n".join(out) + "\n"
