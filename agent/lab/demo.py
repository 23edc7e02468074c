"""``drover lab demo``: drover's operations on the namespace lab, narrated.

Brings the lab up (3 hosts, agents, controller), boots a guest on each
host through the controller and shows that each one runs: its serial
heartbeat, a ping from another host, its status and data area over its
own HTTP control.  The lab stays up afterwards for exploring;
``drover lab down`` removes it.
"""
import json
import time
import urllib.request

from agent.common.errors import DroverError
from agent.lab import fleet
from agent.transport.local import LocalClient


def say(text):
    print(f"\n== {text}", flush=True)


def guest(ip, path, timeout=5):
    with urllib.request.urlopen(f"http://{ip}{path}",
                                timeout=timeout) as resp:
        return dict(kv.split("=", 1) for kv in resp.read().decode().split())


def wait_guest(ip, timeout=90):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return guest(ip, "/cgi-bin/status")
        except OSError:
            if time.monotonic() > deadline:
                raise DroverError(f"guest {ip} did not come up in "
                                  f"{timeout} s") from None
            time.sleep(0.5)


class Demo:
    def __init__(self, lab, socket):
        self.lab = lab
        self.socket = socket

    def call(self, method, **params):
        with LocalClient(self.socket, timeout=600) as client:
            return client.call(method, **params)

    def wait(self, result, what):
        task = result["task_id"]
        last = None
        while True:
            t = self.call("task.show", id=task)
            if t["progress"] and t["progress"] != last:
                print(f"   {what}: {t['progress']}", flush=True)
                last = t["progress"]
            if t["state"] == "done":
                return
            if t["state"] == "failed":
                raise DroverError(f"{what} failed: {t['error']}")
            time.sleep(0.1)

    def table(self, method, columns):
        from agent.cli import output
        print(output.format_list(self.call(method), columns))

    def boot_one_per_host(self):
        hosts = [h["name"] for h in self.lab.status()]
        say(f"booting one guest on each of {len(hosts)} hosts")
        names = []
        for i, host in enumerate(hosts, 1):
            name = f"demo-{i}"
            try:
                self.call("server.show", name=name)
                print(f"   {name} exists already")
            except DroverError:
                started = time.monotonic()
                self.wait(self.call("server.create", name=name,
                                    flavor="lab.small", image="lab-guest",
                                    host=host), f"create {name}")
                print(f"   {name} ACTIVE on {host} in "
                      f"{time.monotonic() - started:.1f} s")
            names.append(name)
        from agent.cli.server import LIST_COLUMNS
        self.table("server.list", LIST_COLUMNS)
        return names

    def show_guests(self, names):
        say("each guest runs: heartbeat, ping from another host, status")
        hosts = [h["name"] for h in self.lab.status()]
        for name in names:
            s = self.call("server.show", name=name)
            status = wait_guest(s["addresses"])
            other = next(h for h in hosts if h != s["host"])
            ping = self.lab.host_exec(other, ["ping", "-c", "1", "-W", "2",
                                              s["addresses"]], check=False)
            ok = "1 received" in ping or "1 packets received" in ping
            beat = [line for line in self.call(
                "server.console_log", name=name, lines=3).splitlines()
                if "heartbeat" in line][-1:]
            print(f"   {name} on {s['host']} at {s['addresses']}: uptime "
                  f"{float(status['uptime']):.0f} s, ping from {other} "
                  f"{'ok' if ok else 'LOST'}; console: "
                  f"{beat[0] if beat else '(none yet)'}")


def run(lab, image_path, progress=print):
    say("lab up: hosts with their own libvirtd, sshd and drover-agent")
    socket = fleet.start(lab, image_path, progress=progress)
    demo = Demo(lab, socket)
    from agent.cli.host import LIST_COLUMNS
    demo.table("host.list", LIST_COLUMNS)
    names = demo.boot_one_per_host()
    demo.show_guests(names)
    say("done; explore with 'drover server list', 'drover host list', ...; "
        "remove everything with 'drover lab down'")
    print(json.dumps({"controller_socket": socket, "servers": names}))
    return 0
