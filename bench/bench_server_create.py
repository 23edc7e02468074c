"""End-to-end time of ``drover server create --wait`` against ``virsh
define`` + ``virsh start`` of the same guest on the same host, same run.

drover's figure covers what an operator waits for: CLI, controller,
scheduling and claim, SSH to the agent, disk overlay, domain XML, define,
start.  virsh's covers define and start of an identical domain XML over a
fresh overlay of the same cached image.  Rounds alternate; medians and
their ratio are printed.

    .venv/bin/python bench/bench_server_create.py [--rounds 5]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import uuid

from benchlab import bench_fleet, drover


def _virsh(uri, *args):
    proc = subprocess.run(["virsh", "-q", "-c", uri, *args],
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"virsh {' '.join(args)}: {proc.stderr.strip()}")


def _drover_round(socket, name, host):
    start = time.perf_counter()
    out = drover(socket, "server", "create", name, "--flavor", "lab.small",
                 "--image", "lab-guest", "--host", host, "--wait", "-f",
                 "json")
    took = time.perf_counter() - start
    return took, json.loads(out)


def _virsh_round(lab, host_row, xml, src):
    """The same XML with a new UUID, name and MAC, its files in a fresh
    directory with a new overlay of the same image; define + start."""
    new_uuid = str(uuid.uuid4())
    new_dir = f"/var/lib/drover/instances/{new_uuid}"
    host = host_row["name"]
    lab.host_exec(host, ["mkdir", "-p", new_dir])
    lab.host_exec(host, ["qemu-img", "create", "-q", "-f", "qcow2", "-F",
                         "qcow2", "-b", src["backing"], f"{new_dir}/disk",
                         src["size"]])
    dxml = xml.replace(src["dir"], new_dir)
    dxml = re.sub(r"<uuid>[^<]+</uuid>", f"<uuid>{new_uuid}</uuid>", dxml)
    dxml = re.sub(r"<name>[^<]+</name>", f"<name>bench-{new_uuid}</name>",
                  dxml, count=1)
    dxml = re.sub(r"<mac address='[^']+'/>",
                  "<mac address='52:54:00:be:00:01'/>", dxml)
    path = f"/tmp/bench-{new_uuid}.xml"
    with open(path, "w") as f:
        f.write(dxml)
    uri = host_row["libvirt_uri"]
    start = time.perf_counter()
    _virsh(uri, "define", path)
    _virsh(uri, "start", f"bench-{new_uuid}")
    took = time.perf_counter() - start
    _virsh(uri, "destroy", f"bench-{new_uuid}")
    _virsh(uri, "undefine", f"bench-{new_uuid}")
    lab.host_exec(host, ["rm", "-rf", new_dir])
    os.unlink(path)
    return took


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with bench_fleet("dbench", "198.18.96.0/24", hosts=2) as (lab, socket):
        host_row = lab.status()[0]
        host = host_row["name"]
        # Warm-up: the image reaches the host's cache once, as in use.
        _, first = _drover_round(socket, "bench-warm", host)
        inst_dir = f"/var/lib/drover/instances/{first['id']}"
        xml = lab.host_exec(host, ["cat", f"{inst_dir}/libvirt.xml"])
        info = json.loads(lab.host_exec(host, [
            "qemu-img", "info", "--output=json", "--force-share",
            f"{inst_dir}/disk"]))
        src = {"dir": inst_dir,
               "backing": info["full-backing-filename"],
               "size": str(info["virtual-size"])}
        drover_t, virsh_t = [], []
        for i in range(args.rounds):
            took, _ = _drover_round(socket, f"bench-{i}", host)
            drover_t.append(took)
            virsh_t.append(_virsh_round(lab, host_row, xml, src))
            drover(socket, "server", "delete", f"bench-{i}", "--wait")
        drover(socket, "server", "delete", "bench-warm", "--wait")
    d, v = statistics.median(drover_t), statistics.median(virsh_t)
    print(f"{'':28} {'median s':>9} {'min s':>7} {'max s':>7}")
    print(f"{'drover server create --wait':28} {d:9.3f} {min(drover_t):7.3f}"
          f" {max(drover_t):7.3f}")
    print(f"{'virsh define + start':28} {v:9.3f} {min(virsh_t):7.3f}"
          f" {max(virsh_t):7.3f}")
    print(f"ratio drover / virsh: {d / v:.2f}  ({args.rounds} rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
