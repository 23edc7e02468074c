"""The lab guest image, booted by plain QEMU (TCG) from its own disk.

The guest's NIC is a tap device in a network namespace of this test
(``dimg<pid>``, 198.18.250.0/24); HTTP and ping run inside that namespace.
Tests share one guest and run in file order: the last one powers it off.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest

from agent.common import process
from agent.lab import image

GUEST_IP = "198.18.250.100"
HOST_IP = "198.18.250.1"
TAP = "dimgtap0"
READY_TIMEOUT = 60
SEED = 4242

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("qemu-system-x86_64"),
    reason="needs root (network namespace, tap) and qemu-system-x86_64")


class Guest:
    """One QEMU process booting a copy-on-write overlay of the image."""

    def __init__(self, workdir, netns, base):
        self.workdir = workdir
        self.netns = netns
        self.disk = workdir / "disk.qcow2"
        self.serial = workdir / "serial.log"
        self.monitor = workdir / "monitor.sock"
        process.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base,
                     "-F", "qcow2", self.disk])
        self.proc = None

    def boot(self):
        """Start QEMU; return seconds until the guest printed drover-ready."""
        self.serial.write_bytes(b"")
        argv = ["ip", "netns", "exec", self.netns,
                "qemu-system-x86_64", "-machine", "pc", "-accel", "tcg",
                "-cpu", "qemu64", "-m", "256", "-display", "none",
                "-serial", f"file:{self.serial}",
                "-monitor", f"unix:{self.monitor},server=on,wait=off",
                "-drive", f"file={self.disk},if=virtio,format=qcow2",
                "-netdev", f"tap,id=n0,ifname={TAP},script=no,downscript=no",
                "-device", "virtio-net-pci,netdev=n0"]
        for oem in image.oem_strings(f"{GUEST_IP}/24", hostname="dimg-guest",
                                     gateway=HOST_IP, dirty_mbps=2):
            argv += ["-smbios", f"type=11,value={oem}"]
        start = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.wait_for(r"drover-ready ip=", READY_TIMEOUT)
        seconds = time.monotonic() - start
        self.wait_for(r"drover-heartbeat", 10)
        return seconds

    def log(self):
        return self.serial.read_bytes().decode(errors="replace")

    def wait_for(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log())
            if match:
                return match
            if self.proc.poll() is not None:
                pytest.fail(f"QEMU exited: {self.proc.stderr.read()!r}")
            time.sleep(0.1)
        pytest.fail(f"no {pattern!r} on the serial console in {timeout} s:\n"
                    + self.log()[-2000:])

    def heartbeats(self):
        return [(float(up), boot) for up, boot in re.findall(
            r"drover-heartbeat uptime=([\d.]+) boot=(\S+)", self.log())]

    def hmp(self, command):
        """Run a QEMU monitor command; return its output."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(self.monitor))
            self._read_prompt(sock)
            sock.sendall(command.encode() + b"\n")
            out = self._read_prompt(sock)
        return re.sub(r"\x1b\[[0-9]*[A-Z]", "", out).replace("\r", "")

    @staticmethod
    def _read_prompt(sock):
        buf = b""
        while not buf.endswith(b"(qemu) "):
            chunk = sock.recv(4096)
            if not chunk:
                break
            buf += chunk
        return buf.decode(errors="replace")

    def http(self, path, timeout=60):
        """GET a control server path from inside the namespace."""
        code = ("import sys, urllib.request; sys.stdout.write(urllib.request"
                f".urlopen(sys.argv[1], timeout={timeout}).read().decode())")
        out = process.run(["ip", "netns", "exec", self.netns, sys.executable,
                           "-c", code, f"http://{GUEST_IP}{path}"],
                          timeout=timeout + 10)
        return image.parse_reply(out)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def base_image():
    cache = os.environ.get("DROVER_LAB_CACHE", "/var/cache/drover-lab")
    return image.build_image(cache)


@pytest.fixture(scope="module")
def netns():
    name = f"dimg{os.getpid()}"
    process.run(["ip", "netns", "add", name])
    try:
        for argv in (["tuntap", "add", "dev", TAP, "mode", "tap"],
                     ["addr", "add", f"{HOST_IP}/24", "dev", TAP],
                     ["link", "set", TAP, "up"],
                     ["link", "set", "lo", "up"]):
            process.run(["ip", "-n", name] + argv)
        yield name
    finally:
        process.run(["ip", "netns", "delete", name], check=False)


@pytest.fixture(scope="module")
def guest(base_image, netns, tmp_path_factory):
    the_guest = Guest(tmp_path_factory.mktemp("dimg"), netns, base_image)
    try:
        seconds = the_guest.boot()
        print(f"\nboot to drover-ready: {seconds:.2f} s (target < 10 s)")
        yield the_guest
    finally:
        the_guest.stop()


def test_image_is_small_and_cached(base_image):
    info = process.run(["qemu-img", "info", "--output=json", base_image])
    virtual = int(re.search(r'"virtual-size": (\d+)', info).group(1))
    allocated = os.stat(base_image).st_blocks * 512
    print(f"\nimage: virtual {virtual / image.MiB:.0f} MiB, "
          f"allocated {allocated / image.MiB:.1f} MiB")
    assert virtual == image.DISK_SIZE
    assert allocated < image.DATA_OFFSET
    mtime = base_image.stat().st_mtime_ns
    assert image.build_image(base_image.parent) == base_image
    assert base_image.stat().st_mtime_ns == mtime


def test_heartbeat_uptime_grows_with_one_boot_id(guest):
    time.sleep(3)
    beats = guest.heartbeats()
    assert len(beats) >= 3
    assert len({boot for _, boot in beats}) == 1
    uptimes = [up for up, _ in beats]
    assert uptimes == sorted(uptimes) and uptimes[-1] - uptimes[0] >= 2


def test_answers_ping_and_reports_status(guest):
    process.run(["ip", "netns", "exec", guest.netns, "ping", "-c", "1",
                 "-W", "5", GUEST_IP], timeout=15)
    status = guest.http("/cgi-bin/status")
    assert status["boot"] == guest.heartbeats()[-1][1]
    assert float(status["uptime"]) > 0
    assert status["dirty_mbps"] == "2"          # from the OEM string


def test_dirty_workload_rate_changes_at_runtime(guest):
    def measured_rate():
        # QEMU samples pages and compares their contents over 1 s.
        guest.hmp("calc_dirty_rate 1 4096")
        time.sleep(2)
        out = guest.hmp("info dirty_rate")
        return int(re.search(r"Dirty rate: (\d+)", out).group(1))

    assert guest.http("/cgi-bin/dirty?mbps=0") == {"dirty_mbps": "0"}
    time.sleep(1.5)
    idle = measured_rate()
    assert guest.http("/cgi-bin/status")["dirty_achieved"] == "0.0"
    assert guest.http("/cgi-bin/dirty?mbps=32") == {"dirty_mbps": "32"}
    assert guest.http("/cgi-bin/status")["dirty_mbps"] == "32"
    time.sleep(1.5)
    busy = measured_rate()
    # The rate the workload's last pass reached: never more than asked;
    # less only when the guest is too slow for 32 MiB/s.
    achieved = float(guest.http("/cgi-bin/status")["dirty_achieved"])
    assert 0 < achieved <= 32
    print(f"\ndirty rate sampled by QEMU: idle {idle} MB/s, "
          f"at 32 MiB/s {busy} MB/s")
    assert busy >= idle + 8
    guest.http("/cgi-bin/dirty?mbps=0")


def test_data_survives_powerdown_and_reboot(guest):
    expected = image.data_pattern_sha256(SEED)
    assert guest.http(f"/cgi-bin/data-write?seed={SEED}")["sha256"] == expected
    assert guest.http("/cgi-bin/data-read")["sha256"] == expected
    first_boot = guest.heartbeats()[-1][1]

    start = time.monotonic()
    guest.hmp("system_powerdown")
    guest.proc.wait(timeout=20)
    print(f"\ngraceful power-off took {time.monotonic() - start:.2f} s")
    assert "drover-poweroff" in guest.log()

    assert image.read_data_area_sha256(guest.disk, "qcow2") == expected
    raw = guest.workdir / "disk.raw"
    process.run(["qemu-img", "convert", "-O", "raw", guest.disk, raw])
    assert image.read_data_area_sha256(raw, "raw") == expected

    # The boot filesystem is intact and the data is still there.
    guest.boot()
    assert guest.http("/cgi-bin/data-read")["sha256"] == expected
    assert guest.heartbeats()[-1][1] != first_boot
