"""Cold migration of a guest with a 4 GiB disk holding ~256 MiB of data,
against a plain ``scp`` of the same disk file between the same two hosts.

Brings up a two-host namespace lab (``dcmb`` on 198.18.203.0/24) with
drover, creates flavor ``bench.4g`` (4 GiB disk) and a guest with it, stops
it, makes its disk a sparse raw file (what a raw-image deployment has; a
qcow2 file holds no holes for scp to waste time on) with ``DATA_MIB`` of
random data written into it, starts it again, then times:

- ``scp`` of that disk file from host 1 to host 2 (guest stopped for it),
- ``drover server migrate NAME --wait`` (graceful power-off, sparse copy,
  define and start on host 2), then checks the guest answers there.

Prints wall times, their ratio and bytes sent / bytes allocated (the copy's
own count, framing included).  Targets: sent <= 1.1 x allocated, migration
wall <= 1/4 of scp.

    .venv/bin/python bench/bench_cold_migration.py [--data-mib 256]
"""
import argparse
import json
import os
import sys
import time

import libvirt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "integration"))

from benchlab import api, bench_fleet, drover  # noqa: E402
from helpers import wait_guest  # noqa: E402

from agent.lab.lab import unavailable_reason  # noqa: E402

MiB, GiB = 1 << 20, 1 << 30
LAB_NAME, LAB_NETWORK = "dcmb", "198.18.203.0/24"
INSTANCES = "/var/lib/drover/instances"
SSH_KEY = "/root/.ssh/id_ed25519"
KNOWN_HOSTS = "/root/.ssh/known_hosts"
CHUNKS = 16

# Run inside the source host: write DATA random MiB in CHUNKS pieces from
# 512 MiB on (clear of the guest's boot file system) into a raw disk.
_FILL = """
import os, sys
path, data, chunks = sys.argv[1], int(sys.argv[2]) << 20, int(sys.argv[3])
size = os.stat(path).st_size
step, piece = (size - (512 << 20)) // chunks, data // chunks
with open(path, "r+b") as f:
    for i in range(chunks):
        f.seek((512 << 20) + i * step)
        for _ in range(piece >> 20):
            f.write(os.urandom(1 << 20))
    f.flush()
    os.fsync(f.fileno())
"""


def host_of(lab, name):
    return {h["name"]: h for h in lab.status()}[name]


def make_raw(lab, host, uuid, data_mib):
    """Stopped guest's qcow2 overlay -> sparse raw with the data added;
    its domain redefined to read raw."""
    disk = f"{INSTANCES}/{uuid}/disk"
    lab.host_exec(host, ["qemu-img", "convert", "-f", "qcow2", "-O", "raw",
                         disk, disk + ".raw"])
    lab.host_exec(host, ["mv", disk + ".raw", disk])
    lab.host_exec(host, ["sh", "-c", 'echo \'{"disk": "raw"}\' > "$1"',
                         "-", f"{INSTANCES}/{uuid}/disk.info"])
    lab.host_exec(host, [sys.executable, "-c", _FILL, disk, str(data_mib),
                         str(CHUNKS)])
    conn = libvirt.open(host_of(lab, host)["libvirt_uri"])
    try:
        dom = conn.lookupByUUIDString(uuid)
        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        conn.defineXML(xml.replace("type='qcow2'", "type='raw'")
                       .replace('type="qcow2"', 'type="raw"'))
    finally:
        conn.close()
    out = lab.host_exec(host, ["stat", "-c", "%s %b %B", disk]).split()
    return int(out[0]), int(out[1]) * int(out[2])


def scp(lab, src_host, uuid, dest_address):
    src = f"{INSTANCES}/{uuid}/disk"
    dest = "/var/lib/drover/bench-scp-disk"
    os.sync()
    started = time.monotonic()
    lab.host_exec(src_host, ["scp", "-q", "-i", SSH_KEY,
                             "-o", f"UserKnownHostsFile={KNOWN_HOSTS}",
                             "-o", "StrictHostKeyChecking=yes",
                             "-o", "BatchMode=yes", src,
                             f"root@{dest_address}:{dest}"])
    took = time.monotonic() - started
    return took, dest


def run(data_mib):
    with bench_fleet(LAB_NAME, LAB_NETWORK, hosts=2) as (lab, socket):
        h1, h2 = sorted(h["name"] for h in lab.status())
        drover(socket, "flavor", "create", "bench.4g", "--vcpus", "1",
               "--ram", "256", "--disk", "4")
        server = json.loads(drover(socket, "server", "create", "bench-vm",
                                   "--flavor", "bench.4g", "--image",
                                   "lab-guest", "--host", h1, "--wait",
                                   "-f", "json"))
        uuid, ip = server["id"], server["addresses"]
        wait_guest(ip)
        drover(socket, "server", "stop", "bench-vm", "--wait")
        virtual, allocated = make_raw(lab, h1, uuid, data_mib)
        scp_wall, scp_dest = scp(lab, h1, uuid, host_of(lab, h2)["address"])
        lab.host_exec(h2, ["rm", "-f", scp_dest])
        drover(socket, "server", "start", "bench-vm", "--wait")
        boot = wait_guest(ip)["boot"]

        os.sync()
        started = time.monotonic()
        drover(socket, "server", "migrate", "bench-vm", "--host", h2,
               "--wait")
        migrate_wall = time.monotonic() - started
        after = wait_guest(ip, timeout=120)
        answered_wall = time.monotonic() - started
        assert after["boot"] != boot
        mig = api(socket, "migration.show", name="bench-vm")
        progress = mig["progress"]
        drover(socket, "server", "resize", "confirm", "bench-vm", "--wait")
        return {"virtual_size": virtual, "allocated": allocated,
                "scp_wall": scp_wall, "migrate_wall": migrate_wall,
                "guest_answered_wall": answered_wall,
                "copy_seconds": progress.get("seconds"),
                "bytes_sent": progress["bytes_sent"],
                "copy_allocated": progress["bytes_allocated"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-mib", type=int, default=256)
    args = parser.parse_args(argv)
    reason = unavailable_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    r = run(args.data_mib)
    sent_ratio = r["bytes_sent"] / r["copy_allocated"]
    wall_ratio = r["migrate_wall"] / r["scp_wall"]
    print(f"disk: {r['virtual_size'] / GiB:.1f} GiB virtual, "
          f"{r['allocated'] / MiB:.0f} MiB allocated")
    print(f"scp of the disk file:    {r['scp_wall']:7.2f} s")
    print(f"drover cold migration:   {r['migrate_wall']:7.2f} s "
          f"(copy {r['copy_seconds'] or 0:.2f} s; guest answering after "
          f"{r['guest_answered_wall']:.2f} s)")
    print(f"wall ratio migrate/scp:  {wall_ratio:7.3f}  (target <= 0.25)")
    print(f"bytes sent / allocated:  {sent_ratio:7.3f}  "
          f"({r['bytes_sent'] / MiB:.1f} MiB / "
          f"{r['copy_allocated'] / MiB:.1f} MiB; target <= 1.1)")
    ok = sent_ratio <= 1.1 and wall_ratio <= 0.25
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
