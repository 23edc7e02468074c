"""Disk copy between two lab hosts: plain OpenSSH ``scp`` vs ``send_file``.

Brings up a two-host namespace lab (``dcp`` on 198.18.201.0/25), makes a
sparse raw disk on host 1 (4 GiB virtual, 256 MiB of random data in 16
extents) and its qcow2 conversion, and copies each to host 2 with plain
``scp`` and with ``agent.transport.diskcopy.send_file``, both run inside
host 1 with the lab's host-to-host key and strict host keys.  Prints wall
time, the ratio scp / send_file, bytes sent / allocated and what the copy
occupies at the destination; each copy is checked against its source
(sha256 of the whole file).

    .venv/bin/python bench/bench_diskcopy.py [--virtual-gib 4]
        [--data-mib 256] [--runs 1]
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from agent.lab.lab import Lab, unavailable_reason
from agent.transport import diskcopy

MiB, GiB = 1 << 20, 1 << 30
LAB_NAME, LAB_NETWORK = "dcp", "198.18.201.0/25"
BENCH_DIR = "bench-diskcopy"             # under /var/lib/drover in hosts
SSH_KEY = "/root/.ssh/id_ed25519"        # the lab's host-to-host key
KNOWN_HOSTS = "/root/.ssh/known_hosts"


def make_disk(path, virtual, data, extents=16):
    """A sparse raw file: ``data`` random bytes spread over ``extents``."""
    step, length = virtual // extents, data // extents
    with open(path, "wb") as f:
        f.truncate(virtual)
        for i in range(extents):
            f.seek(i * step + (i * 7919 * 4096) % (step - length))
            for _ in range(length // MiB):
                f.write(os.urandom(MiB))


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def allocated(path):
    return os.stat(path).st_blocks * 512


def scp(lab, src, address, dest):
    os.sync()       # no writeback of an earlier copy during this one
    argv = ["scp", "-q", "-i", SSH_KEY,
            "-o", f"UserKnownHostsFile={KNOWN_HOSTS}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
            src, f"root@{address}:{dest}"]
    started = time.monotonic()
    lab.host_exec("h1", argv)
    return time.monotonic() - started


def send(lab, src, address, dest, root):
    """send_file run inside host 1 (this script's ``send`` command)."""
    argv = [sys.executable, os.path.abspath(__file__), "send", src, address,
            dest, root]
    os.sync()
    started = time.monotonic()
    result = json.loads(lab.host_exec("h1", argv))
    return time.monotonic() - started, result


def send_command(src, address, dest, root):
    """Inside host 1: copy ``src`` to host ``address`` and print the
    result as JSON."""
    result = diskcopy.send_file(
        src, address, dest, ssh_user="root", identity=SSH_KEY,
        known_hosts=KNOWN_HOSTS,
        receiver_argv=[sys.executable, "-m", "agent.transport.diskcopy",
                       "receive", "--root", root])
    print(json.dumps(result))


def compare(lab, name, outside, inside, address):
    """scp and send_file of ``name``; returns the row to print."""
    src_out, dest_dir_out = outside
    src_in, dest_dir_in = inside
    src = os.path.join(src_out, name)
    row = {"file": name, "virtual": os.stat(src).st_size,
           "allocated": allocated(src)}
    scp_dest = os.path.join(dest_dir_out, "scp-" + name)
    row["scp_s"] = scp(lab, os.path.join(src_in, name), address,
                       os.path.join(dest_dir_in, "scp-" + name))
    row["scp_dest"] = allocated(scp_dest)
    same = sha256(scp_dest) == sha256(src)
    os.unlink(scp_dest)
    dest = os.path.join(dest_dir_out, name)
    row["send_s"], result = send(lab, os.path.join(src_in, name), address,
                                 os.path.join(dest_dir_in, name),
                                 dest_dir_in)
    row["send_inner_s"] = result["seconds"]
    row["sent"] = result["bytes_sent"]
    row["send_dest"] = allocated(dest)
    row["identical"] = same and sha256(dest) == sha256(src)
    os.unlink(dest)
    return row


def show(row):
    print(f"{row['file']}: file size {row['virtual'] / MiB:.0f} MiB, "
          f"{row['allocated'] / MiB:.0f} MiB allocated")
    print(f"  scp        {row['scp_s']:6.2f} s   dest "
          f"{row['scp_dest'] / MiB:6.0f} MiB allocated")
    print(f"  send_file  {row['send_s']:6.2f} s   dest "
          f"{row['send_dest'] / MiB:6.0f} MiB allocated   (copy itself "
          f"{row['send_inner_s']:.2f} s)")
    print(f"  ratio scp/send_file {row['scp_s'] / row['send_s']:.1f}x, "
          f"send_file time = {row['send_s'] / row['scp_s']:.3f} x scp; "
          f"bytes sent / allocated {row['sent'] / row['allocated']:.4f}; "
          f"data identical: {row['identical']}")


def bench(args):
    reason = unavailable_reason()
    if reason:
        sys.exit(f"bench_diskcopy: {reason}")
    lab = Lab(tempfile.mkdtemp(prefix="dcp-lab-"), LAB_NAME, LAB_NETWORK)
    try:
        print(f"lab {LAB_NAME} up ...", flush=True)
        hosts = lab.up(2)
        address = hosts[1]["address"]
        local = hosts[0]["local_storage"]
        inside = (os.path.join(local, BENCH_DIR),
                  os.path.join(local, "instances", BENCH_DIR))
        outside = (os.path.join(hosts[0]["local_storage_dir"], BENCH_DIR),
                   os.path.join(hosts[1]["local_storage_dir"], "instances",
                                BENCH_DIR))
        for d in outside:
            os.makedirs(d, exist_ok=True)
        raw = os.path.join(outside[0], "disk.raw")
        make_disk(raw, args.virtual_gib * GiB, args.data_mib * MiB)
        subprocess.run(["qemu-img", "convert", "-O", "qcow2", raw,
                        os.path.join(outside[0], "disk.qcow2")], check=True)
        for run in range(args.runs):
            print(f"-- run {run + 1} of {args.runs}")
            for name in ("disk.raw", "disk.qcow2"):
                show(compare(lab, name, outside, inside, address))
    finally:
        lab.down()
        shutil.rmtree(lab.lab_dir, ignore_errors=True)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["send"]:
        return send_command(*argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--virtual-gib", type=int, default=4)
    parser.add_argument("--data-mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=1)
    bench(parser.parse_args(argv))


if __name__ == "__main__":
    main()
