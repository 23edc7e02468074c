"""Live snapshot of a guest with 256 MiB of data on a 4 GiB disk, against
a raw ``qemu-img convert`` of the same disk, stopped, in the same run.

Brings up a one-host namespace lab (``dsnb`` on 198.18.205.0/24) with
drover, creates flavor ``bench.4g`` (4 GiB disk) and a guest with it,
writes ``DATA_MIB`` of data into its disk (16 pieces spread over the disk,
with qemu-io while it is stopped), starts it, then in each round:

- ``drover server image create bench-vm --name ... --wait`` while the
  guest runs and a pinger in the lab pings it every 10 ms: wall time (CLI
  to the image active and checked in the controller's store), the copy
  on the host alone (libvirt's backup job, from the task's progress),
  each task step's time (from the controller's task records), the
  longest gap in the replies (the guest's longest pause, as the network
  sees it), the image's size;
- the guest stopped, ``qemu-img convert -O qcow2`` of its disk chain on
  the host, timed: the raw tool doing the copy offline (the issue's
  reference; it reads the data from the page cache, where qemu-io left
  it), and once more with ``-T none``: reading the disk with O_DIRECT,
  as the running guest's QEMU does (libvirt's cache='none');
- the same convert ending where drover's image ends, with a sha256 of
  it: written straight into the store (``--store shared``, the store on
  the lab's shared storage, [controller] image_store_host_path set) and
  hashed with ``openssl dgst -sha256``, or (``--store ssh``, the default
  configuration) written beside the disk and copied into the store over
  the controller's SSH, hashed on the way: the raw tools reaching the
  same end state, offline.

Prints median and spread (min..max) over the rounds and both ratios.
Targets: pause <= 100 ms, snapshot wall <= 1.5 x offline convert, image
size <= 1.1 x the allocated data.

    .venv/bin/python bench/bench_snapshot.py [--rounds 3] [--data-mib 256]
        [--store shared|ssh]
"""
import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "integration"))

from benchlab import DROVER, bench_fleet, drover  # noqa: E402
from helpers import wait_guest  # noqa: E402

from agent.lab import fleet  # noqa: E402
from agent.lab.lab import unavailable_reason  # noqa: E402
from agent.lab.pinger import Pinger  # noqa: E402
from agent.lab.plan import SHARED_STORAGE  # noqa: E402
from agent.transport import diskcopy  # noqa: E402

MiB = 1 << 20
LAB_NAME, LAB_NETWORK = "dsnb", "198.18.205.0/24"
INSTANCES = "/var/lib/drover/instances"
PIECES = 16
_COPIED = re.compile(r"disk copied:? \(?(\w+), (\d+) MiB in ([\d.]+) s")
_STORED = re.compile(r"stored and checked in ([\d.]+) s")


def fill(lab, host, disk, data_mib):
    """Write ``data_mib`` MiB of non-zero data into the stopped guest's
    qcow2 overlay, in PIECES pieces from 512 MiB on (clear of its boot
    file system)."""
    size = json.loads(lab.host_exec(host, ["qemu-img", "info",
                                           "--output=json", disk]))[
        "virtual-size"]
    piece = data_mib // PIECES
    step = (size - (512 * MiB)) // PIECES // MiB
    argv = ["qemu-io", "-f", "qcow2", disk]
    for i in range(PIECES):
        argv += ["-c", f"write -P {0x11 + i} {512 + i * step}M {piece}M"]
    lab.host_exec(host, argv)


def allocated_data(lab, host, disk):
    """Bytes of data the guest's disk holds through its chain (qemu-img
    map: extents with data)."""
    out = json.loads(lab.host_exec(host, ["qemu-img", "map", "-U",
                                          "--output=json", disk]))
    return sum(e["length"] for e in out if e["data"])


def snapshot(lab, socket, ip, name):
    pinger = Pinger(lab, None, ip, interval=0.01)
    time.sleep(0.5)
    started = time.monotonic()
    proc = subprocess.run(DROVER + ["--controller-socket", socket, "server",
                                    "image", "create", "bench-vm", "--name",
                                    name, "--wait", "-f", "json"],
                          capture_output=True, text=True)
    wall = time.monotonic() - started
    pinger.stop()
    if proc.returncode:
        raise RuntimeError(f"image create: {proc.stderr}")
    copied = _COPIED.findall(proc.stderr)[-1:]
    copied = copied[0] if copied else None
    stored = _STORED.findall(proc.stderr)[-1:]
    image = json.loads(proc.stdout)
    return {"wall": wall, "copy": float(copied[2]) if copied else None,
            "store": float(stored[0]) if stored else None,
            "method": copied[0] if copied else None,
            "pause_ms": pinger.longest_gap_ms, "lost": pinger.lost,
            "size": image["size"]}


def step_times(lab):
    """Seconds each step of the last snapshot task took, from the
    controller's task records ({step name: seconds}), and the task's
    own span (its creation to its last step's end)."""
    import sqlalchemy
    engine = sqlalchemy.create_engine(fleet.database_url(lab))
    with engine.connect() as db:
        task_id, created = db.execute(sqlalchemy.text(
            "SELECT id, created_at FROM tasks WHERE kind = 'snapshot' "
            "ORDER BY id DESC LIMIT 1")).one()
        rows = db.execute(sqlalchemy.text(
            "SELECT name, started_at, finished_at FROM task_steps "
            "WHERE task_id = :t ORDER BY step_index"), {"t": task_id}).all()
    engine.dispose()

    def when(v):
        return datetime.datetime.fromisoformat(str(v))
    times = {name: (when(end) - when(start)).total_seconds()
             for name, start, end in rows if end}
    times["task"] = (when(rows[-1][2]) - when(created)).total_seconds()
    return times


def convert(lab, host, disk, *options):
    out = "/var/lib/drover/bench-convert.qcow2"
    os.sync()
    started = time.monotonic()
    lab.host_exec(host, ["qemu-img", "convert", *options, "-O", "qcow2",
                         disk, out])
    took = time.monotonic() - started
    size = int(lab.host_exec(host, ["stat", "-c", "%s", out]))
    lab.host_exec(host, ["rm", "-f", out])
    return took, size


def store_options(store):
    """The controller's options for ``--store``."""
    if store == "ssh":
        return None
    return lambda lab: {"controller": {
        "image_store_path": os.path.join(lab.files.shared_dir, "images"),
        "image_store_host_path": f"{SHARED_STORAGE}/images"}}


def convert_to_store(lab, host, disk, store):
    """The raw tools' way to drover's end state, offline: a compact
    qcow2 of the stopped disk in the image store, and its sha256."""
    name = "bench-convert.qcow2"
    os.sync()
    started = time.monotonic()
    if store == "shared":
        out = f"{SHARED_STORAGE}/images/{name}"
        lab.host_exec(host, ["sh", "-c", 'qemu-img convert -O qcow2 "$1" '
                             '"$2" && openssl dgst -sha256 "$2"', "-",
                             disk, out])
        took = time.monotonic() - started
        os.unlink(os.path.join(lab.files.shared_dir, "images", name))
        return took
    out = f"/var/lib/drover/{name}"
    lab.host_exec(host, ["qemu-img", "convert", "-O", "qcow2", disk, out])
    ssh = lab.controller_ssh
    address = [h for h in lab.status() if h["name"] == host][0]["address"]
    argv = diskcopy.ssh_argv(address, ssh_user=ssh["user"],
                             identity=ssh["private_key"],
                             known_hosts=ssh["known_hosts"])
    local = os.path.join(lab.lab_dir, name)
    with open(local, "wb") as f:
        subprocess.run(argv + ["cat", out], stdout=f, check=True)
    subprocess.run(["openssl", "dgst", "-sha256", local], check=True,
                   capture_output=True)
    took = time.monotonic() - started
    os.unlink(local)
    lab.host_exec(host, ["rm", "-f", out])
    return took


def run(rounds, data_mib, store):
    with bench_fleet(LAB_NAME, LAB_NETWORK, hosts=1,
                     controller_options=store_options(store)) as (lab,
                                                                  socket):
        host = lab.status()[0]["name"]
        drover(socket, "flavor", "create", "bench.4g", "--vcpus", "1",
               "--ram", "256", "--disk", "4")
        server = json.loads(drover(socket, "server", "create", "bench-vm",
                                   "--flavor", "bench.4g", "--image",
                                   "lab-guest", "--wait", "-f", "json"))
        uuid, ip = server["id"], server["addresses"]
        disk = f"{INSTANCES}/{uuid}/disk"
        wait_guest(ip)
        drover(socket, "server", "stop", "bench-vm", "--wait")
        fill(lab, host, disk, data_mib)
        data = allocated_data(lab, host, disk)
        results = []
        for i in range(rounds):
            drover(socket, "server", "start", "bench-vm", "--wait")
            boot = wait_guest(ip, timeout=90)["boot"]
            live = snapshot(lab, socket, ip, f"bench-snap-{i}")
            live["steps"] = step_times(lab)
            assert wait_guest(ip)["boot"] == boot, "the guest restarted"
            drover(socket, "image", "delete", f"bench-snap-{i}")
            drover(socket, "server", "stop", "bench-vm", "--wait")
            live["convert"], live["convert_size"] = convert(lab, host, disk)
            live["convert_store"] = convert_to_store(lab, host, disk, store)
            live["convert_direct"] = convert(lab, host, disk, "-T", "none")[0]
            results.append(live)
        return data, results


def spread(values, fmt="{:.2f}"):
    return (f"{fmt.format(statistics.median(values))} "
            f"({fmt.format(min(values))}..{fmt.format(max(values))})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data-mib", type=int, default=256)
    parser.add_argument("--store", choices=("shared", "ssh"),
                        default="shared",
                        help="the image store on the lab's shared storage "
                             "([controller] image_store_host_path set), or "
                             "reached over SSH (the default configuration)")
    args = parser.parse_args(argv)
    reason = unavailable_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    data, rs = run(args.rounds, args.data_mib, args.store)
    col = {k: [r[k] for r in rs] for k in rs[0]}
    steps = {k: [r["steps"][k] for r in rs if k in r["steps"]]
             for k in rs[0]["steps"]}
    wall_ratio = [r["wall"] / r["convert"] for r in rs]
    store_ratio = [r["wall"] / r["convert_store"] for r in rs]
    copy_ratio = [r["copy"] / r["convert"] for r in rs if r["copy"]]
    size_ratio = [r["size"] / data for r in rs]
    conv_ratio = [r["convert_size"] / data for r in rs]
    print(f"{len(rs)} rounds, median (min..max); data {data / MiB:.0f} MiB "
          f"allocated in the disk's chain, method {col['method'][0]}")
    print(f"qemu-img convert, stopped:  {spread(col['convert'])} s")
    print(f"  the same, -T none:        {spread(col['convert_direct'])} s "
          "(O_DIRECT reads, as QEMU's under cache='none')")
    print(f"  the same into the store:  {spread(col['convert_store'])} s "
          f"(store: {args.store}; with its sha256)")
    print(f"drover live snapshot wall:  {spread(col['wall'])} s "
          "(CLI to the image active and checked in the store)")
    if copy_ratio:
        print(f"  of which the host's copy: "
              f"{spread([r['copy'] for r in rs if r['copy']])} s")
    stores = [r["store"] for r in rs if r["store"]]
    if stores:
        print(f"  of which into the store:  {spread(stores)} s " + (
            "(ssh copy to the controller, sha256 on the way)"
            if args.store == "ssh" else
            "(the host's file found whole in the shared store)"))
    print("  task steps: " + ", ".join(
        f"{k} {statistics.median(v):.3f}" for k, v in steps.items()) + " s")
    print(f"guest's longest pause:      {spread(col['pause_ms'], '{:.0f}')}"
          f" ms (pings every 10 ms; lost {col['lost']})  target <= 100")
    print(f"wall ratio snapshot/convert: {spread(wall_ratio, '{:.3f}')}  "
          "target <= 1.5")
    print(f"wall ratio snapshot/(convert into the store): "
          f"{spread(store_ratio, '{:.3f}')}  (same end state)")
    if copy_ratio:
        print(f"copy ratio host copy/convert: "
              f"{spread(copy_ratio, '{:.3f}')}")
    print(f"image size / allocated data: {spread(size_ratio, '{:.3f}')}  "
          f"target <= 1.1 (convert's own: {spread(conv_ratio, '{:.3f}')})")
    ok = (statistics.median(col["pause_ms"]) <= 100
          and statistics.median(wall_ratio) <= 1.5
          and statistics.median(size_ratio) <= 1.1)
    print("targets met" if ok else "targets NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
