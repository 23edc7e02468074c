#!/usr/bin/env bash
# One hypervisor host: packages, drover in /opt/drover/venv, its pinned SSH
# keys, agent config, shared storage (NFS from drover-h1), virtlockd with
# its leases on the shared storage, systemd units. drover-h1 also gets the
# controller and fence_virsh (fencing through the outer libvirt).
set -euo pipefail
: "${DROVER_INDEX:?}" "${DROVER_HOSTS:?}" "${DROVER_NETWORK:?}"
export DEBIAN_FRONTEND=noninteractive
SRC=/opt/drover/src
KEYS=$SRC/vagrant/.keys
name="drover-h${DROVER_INDEX}"
addr="${DROVER_NETWORK}.$((10 + DROVER_INDEX))"

apt-get update -q
apt-get install -y -q --no-install-recommends \
  libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients \
  qemu-system-x86 qemu-utils libvirt-dev pkg-config gcc python3-dev \
  python3-venv openssh-server openssh-client nfs-common
if [ "$DROVER_INDEX" = 1 ]; then
  apt-get install -y -q --no-install-recommends nfs-kernel-server \
    fence-agents
fi

python3 -m venv /opt/drover/venv
/opt/drover/venv/bin/pip install -q --upgrade pip
/opt/drover/venv/bin/pip install -q "$SRC"

# SSH: this host's own pinned key; the fleet key for the controller and
# host-to-host copies; known_hosts with every host's key by name and address.
install -m 0600 "$KEYS/${name}-host" /etc/ssh/ssh_host_ed25519_key
install -m 0644 "$KEYS/${name}-host.pub" /etc/ssh/ssh_host_ed25519_key.pub
systemctl restart ssh
install -d -m 0700 /root/.ssh /etc/drover/ssh
install -m 0600 "$KEYS/fleet" /root/.ssh/id_ed25519
install -m 0600 "$KEYS/fleet" /etc/drover/ssh/id_ed25519
grep -qF "$(cat "$KEYS/fleet.pub")" /root/.ssh/authorized_keys 2>/dev/null ||
  cat "$KEYS/fleet.pub" >> /root/.ssh/authorized_keys
: > /root/.ssh/known_hosts
for i in $(seq 1 "$DROVER_HOSTS"); do
  printf 'drover-h%s,%s.%s %s\n' "$i" "$DROVER_NETWORK" "$((10 + i))" \
    "$(cut -d' ' -f1,2 "$KEYS/drover-h${i}-host.pub")" >> /root/.ssh/known_hosts
  grep -q " drover-h$i\$" /etc/hosts ||
    echo "${DROVER_NETWORK}.$((10 + i)) drover-h$i" >> /etc/hosts
done
cp /root/.ssh/known_hosts /etc/drover/ssh/known_hosts
if [ "$DROVER_INDEX" = 1 ]; then
  # fence_virsh logs in to the outer hypervisor with its own key, checking
  # the outer host key the Vagrantfile copied (root's known_hosts: the
  # controller runs fence agents as root).
  install -m 0600 "$KEYS/fence" /etc/drover/ssh/fence_virsh
  if [ -f "$KEYS/outer-host.pub" ]; then
    printf '%s %s\n' "${DROVER_FENCE_ADDRESS:?}" \
      "$(cut -d' ' -f1,2 "$KEYS/outer-host.pub")" >> /root/.ssh/known_hosts
  fi
fi

install -d -m 0755 /var/lib/drover/instances /var/lib/drover/images \
  /var/lib/drover-shared
cat > /etc/drover/drover.conf <<CONF
[DEFAULT]
host = ${name}

[libvirt]
virt_type = kvm
cpu_model = qemu64

[agent]
instances_path = /var/lib/drover/instances
shared_instances_path = /var/lib/drover-shared/instances
image_cache_path = /var/lib/drover/images
bridge = br-guest
migration_address = ${addr}

[ssh]
relay_command = /opt/drover/venv/bin/drover-agent relay

[database]
connection = sqlite:////var/lib/drover/drover.db
CONF

# Guests attach to br-guest (give it an uplink to reach them from outside).
# Its MAC is pinned: left to itself Linux gives a bridge the lowest MAC of
# its ports, here a guest's tap (fe:54:...), and during a live migration
# the other host, holding a tap with that same MAC, would drop this host's
# frames as its own. There is no uplink here, so a locally administered
# MAC unique to this host; if you add an uplink, pin the uplink's MAC.
bridge_mac=$(printf '02:64:72:00:00:%02x' "$DROVER_INDEX")
ip link show br-guest >/dev/null 2>&1 ||
  ip link add br-guest address "$bridge_mac" type bridge
ip link set br-guest address "$bridge_mac" up

systemctl enable --now libvirtd

if [ "$DROVER_INDEX" = 1 ]; then
  echo "/var/lib/drover-shared ${DROVER_NETWORK}.0/24(rw,sync,no_root_squash,no_subtree_check)" \
    > /etc/exports.d/drover.exports
  systemctl enable --now nfs-server
  exportfs -ra
else
  grep -q drover-shared /etc/fstab || echo \
    "${DROVER_NETWORK}.11:/var/lib/drover-shared /var/lib/drover-shared nfs defaults,_netdev 0 0" \
    >> /etc/fstab
  mount /var/lib/drover-shared
fi
install -d -m 0755 /var/lib/drover-shared/instances

# Disk leases: libvirt's lock manager, virtlockd, holds a lease for every
# disk (auto_disk_leases) on a file in the shared storage, named by the
# disk's path, so a second host starting a running guest's disk is refused
# even where QEMU's own image locks do not cross hosts. The leases are
# fcntl locks: the NFS mount must not use `nolock`. virtlockd waits for
# the shared storage at boot.
install -d -m 0700 /var/lib/drover-shared/lockd
grep -q '^lock_manager' /etc/libvirt/qemu.conf ||
  echo 'lock_manager = "lockd"' >> /etc/libvirt/qemu.conf
cat > /etc/libvirt/qemu-lockd.conf <<LOCKD
auto_disk_leases = 1
require_lease_for_disks = 1
file_lockspace_dir = "/var/lib/drover-shared/lockd"
LOCKD
install -d /etc/systemd/system/virtlockd.service.d
cat > /etc/systemd/system/virtlockd.service.d/drover.conf <<UNIT
[Unit]
RequiresMountsFor=/var/lib/drover-shared
UNIT
systemctl daemon-reload
systemctl enable --now virtlockd.socket virtlockd-admin.socket
systemctl restart libvirtd

/opt/drover/venv/bin/python -m agent.common.units \
  --output-dir /etc/systemd/system --bindir /opt/drover/venv/bin \
  --confdir /etc/drover --docdir "$SRC"
systemctl daemon-reload
systemctl enable --now drover-agent
if [ "$DROVER_INDEX" = 1 ]; then
  systemctl enable --now drover-controller
  ln -sf /opt/drover/venv/bin/drover /usr/local/bin/drover
fi
