"""``drover lab demo``: drover's operations on the namespace lab, narrated.

Brings the lab up (3 hosts, agents, controller), boots a guest on each
host through the controller and shows that each one runs: its serial
heartbeat, a ping from another host, its status over its own HTTP control.
Then moves them: a cold migration and a resize, each confirmed, with the
guest's disk data checked after; a live migration on shared storage and a
block live migration of local disks, with pings from another host every
100 ms counted and the guest's uptime shown to go on; a live snapshot to
an image, then a shelve (its host freed) and an unshelve onto another
host with the data checked.  Then a host with
shared-storage guests loses power, is fenced, its guests are evacuated
(their data areas checked) and, powered on again, it is cleaned before it
is back in service.  A guest is rescued: its rescue system reads the
guest's own disk (its data area checked) and the guest is unrescued onto
its own disk, data intact.  Last, drover fleet audit holds the database against
what every host runs and holds.  The lab stays up
afterwards for exploring; ``drover lab down`` removes it.
"""
import json
import time
import urllib.request

from agent.cli import output
from agent.common.errors import DroverError
from agent.lab import fleet
from agent.lab.pinger import Pinger
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
        from agent.cli.common import wait_task
        with LocalClient(self.socket, timeout=600) as client:
            wait_task(client, result["task_id"], what)

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


    def _other_host(self, host):
        return next(h["name"] for h in self.lab.status() if h["name"] != host)

    def _moved(self, name, method, what, **params):
        before = self.call("server.show", name=name)
        started = time.monotonic()
        self.wait(self.call(method, name=name, **params), f"{what} {name}")
        after = self.call("server.show", name=name)
        print(f"   {name}: {before['host']} -> {after['host']} in "
              f"{time.monotonic() - started:.1f} s, status "
              f"{after['status']}")
        return before, after

    def cold_moves(self, names):
        say("cold migration, then resize to lab.medium; each confirmed; "
            "disk data checked")
        for name, method, what, params in (
                (names[0], "server.migrate", "cold migration", {}),
                (names[1], "server.resize", "resize",
                 {"flavor": "lab.medium"})):
            ip = self.call("server.show", name=name)["addresses"]
            wait_guest(ip)
            written = guest(ip, "/cgi-bin/data-write?seed=7", 60)["sha256"]
            self._moved(name, method, what, **params)
            status = wait_guest(ip)
            read = guest(ip, "/cgi-bin/data-read", 60)["sha256"]
            same = "intact" if read == written else "DIFFERENT"
            print(f"   {name}: data area {same} after the move (sha256 "
                  f"{read[:12]}...); guest up {float(status['uptime']):.0f} s")
            self.wait(self.call("server.resize_confirm", name=name),
                      f"resize confirm {name}")
            s = self.call("server.show", name=name)
            print(f"   {name}: confirmed: {s['status']} on {s['host']}, "
                  f"flavor {s['flavor']} ({s['ram_mb']} MB)")

    def prediction(self, names):
        """server migrate --live-migration --dry-run: measured now,
        nothing moves."""
        name = names[0]
        say(f"prediction of a live migration of {name}: dirty rate "
            "measured now (libvirt's sample and the agent's), nothing "
            "moves")
        row = self.call("server.migrate", name=name, live=True,
                        dry_run=True)
        print(f"   {name}: {row['Source']} -> {row['Destination']}: "
              f"{row['Verdict']}, {row['Duration s']} s, downtime "
              f"{row['Downtime ms']} ms ({row['Non-zero MiB']} MiB not "
              f"zero, dirty {row['Dirty MiB/s']} MiB/s, bandwidth "
              f"{row['Bandwidth MiB/s']})")
        return names

    def live_moves(self, names):
        say("live migration: shared storage, then a block migration of "
            "local disks; pings every 100 ms from another host")
        shared = "demo-shared"
        try:
            self.call("server.show", name=shared)
        except DroverError:
            self.wait(self.call("server.create", name=shared,
                                flavor="lab.small", image="lab-guest",
                                storage="shared"), f"create {shared}")
        for name, block in ((shared, None), (names[2], True)):
            s = self.call("server.show", name=name)
            before = wait_guest(s["addresses"])
            pinger = Pinger(self.lab, self._other_host(s["host"]),
                            s["addresses"])
            try:
                self._moved(name, "server.migrate",
                            "block live migration" if block else
                            "live migration", live=True, block=block)
            finally:
                pinger.stop()
            after = wait_guest(s["addresses"])
            mig = self.call("migration.show", name=name)
            same = after["boot"] == before["boot"]
            print(f"   {name}: pings {pinger}; downtime "
                  f"{(mig['progress'] or {}).get('downtime_ms')} ms; uptime "
                  f"{float(before['uptime']):.0f} s -> "
                  f"{float(after['uptime']):.0f} s, "
                  f"{'same boot (no reboot)' if same else 'REBOOTED'}")
        return names + [shared]

    def snapshot_and_shelve(self, name):
        """A live snapshot (the guest keeps its boot, pings every 10 ms),
        then shelve (its host freed) and unshelve onto another host (data,
        MAC and address kept)."""
        say(f"snapshot of {name} while it runs, then shelve and unshelve "
            "it onto another host")
        s = self.call("server.show", name=name)
        ip = s["addresses"]
        before = wait_guest(ip)
        written = guest(ip, "/cgi-bin/data-write?seed=5", 60)["sha256"]
        image_name = f"{name}-snap"
        try:
            self.call("image.show", name=image_name)
            print(f"   image {image_name} exists already")
        except DroverError:
            pinger = Pinger(self.lab, None, ip, interval=0.01)
            try:
                self.wait(self.call("server.image_create", name=name,
                                    image_name=image_name),
                          f"image create {image_name}")
            finally:
                pinger.stop()
            same = wait_guest(ip)["boot"] == before["boot"]
            image = self.call("image.show", name=image_name)
            print(f"   image {image_name}: {image['status']}, "
                  f"{image['size'] >> 20} MiB, sha256 "
                  f"{image['checksum'][:12]}...; guest "
                  f"{'same boot' if same else 'REBOOTED'}, pings {pinger}")
        host = s["host"]
        used = self._ram_used(host)
        self.wait(self.call("server.shelve", name=name), f"shelve {name}")
        shelved = self.call("server.show", name=name)
        print(f"   {name}: {shelved['status']}, host "
              f"{shelved['host'] or '-'}; {host} RAM used {used} -> "
              f"{self._ram_used(host)} MB")
        other = self._other_host(host)
        self.wait(self.call("server.unshelve", name=name, host=other),
                  f"unshelve {name}")
        back = self.call("server.show", name=name)
        wait_guest(ip)
        read = guest(ip, "/cgi-bin/data-read", 60)["sha256"]
        kept = (back["id"], back["mac"], back["addresses"]) == \
            (s["id"], s["mac"], ip)
        print(f"   {name}: {back['status']} on {back['host']}, id, MAC and "
              f"address {'kept' if kept else 'CHANGED'}; data area "
              f"{'intact' if read == written else 'DIFFERENT'}")

    def _ram_used(self, host):
        return {h["Name"]: h for h in self.call("host.list")}[host][
            "RAM MB Used"]

    def audit(self):
        """drover fleet audit: the database against every host's libvirt
        and disks."""
        from agent.cli.fleet import COLUMNS
        say("fleet audit: the database against what every host runs and "
            "holds")
        rows = self.call("fleet.audit")
        if rows:
            print(output.format_list(rows, COLUMNS))
        else:
            print("   clean: every guest defined and running only where the "
                  "database says, claims match, no stray directory")
        return rows

    def server_groups(self):
        """An anti-affinity server group: its members land on different
        hosts, and a boot's dry run names the group's filter."""
        say("server group: anti-affinity members on different hosts")
        try:
            self.call("server_group.show", name="demo-web")
        except DroverError:
            self.call("server_group.create", name="demo-web",
                      policy="anti-affinity")
        names = ["demo-web-1", "demo-web-2"]
        for name in names:
            try:
                self.call("server.show", name=name)
            except DroverError:
                self.wait(self.call("server.create", name=name,
                                    flavor="lab.small", image="lab-guest",
                                    hints={"group": "demo-web"}),
                          f"create {name}")
            print(f"   {name} on "
                  f"{self.call('server.show', name=name)['host']}")
        rows = self.call("server.create", name="demo-web-3",
                         flavor="lab.small", image="lab-guest",
                         hints={"group": "demo-web"}, dry_run=True)
        for row in rows:
            print(f"   dry run of demo-web-3: {row['Host']} "
                  f"{row['Result']} {row['Filter'] or ''}")
        return names

    def rebalance_dry_run(self):
        """drover fleet rebalance --dry-run: the plan, changing nothing."""
        say("rebalance dry run (allocated RAM): the plan, nothing moved")
        plan = self.call("fleet.rebalance", dry_run=True,
                         metric="allocated", threshold=0.01)
        print(f"   score {plan['score_before']:.3f} -> "
              f"{plan['score_after']:.3f} ({plan['reason']})")
        for m in plan["moves"]:
            print(f"   {m['Server']}: {m['Source']} ({m['Source Load']}) "
                  f"-> {m['Destination']} ({m['Destination Load']}), "
                  f"predicted {m['Predicted Time']}")

    def evacuation(self):
        """A host with shared-storage guests loses power (lab host stop,
        LAB2), is fenced (host fence, FENCE), its guests are evacuated and
        their data checked; powered on again, it is cleaned before it is
        up."""
        victim = sorted(h["name"] for h in self.lab.status())[-1]
        say(f"evacuation: {victim} loses power; fenced; its shared-storage "
            "guests rebuilt elsewhere with their data; then it returns")
        names, data = ["demo-ev-1", "demo-ev-2"], {}
        for name in names:
            try:
                s = self.call("server.show", name=name)
            except DroverError:
                self.wait(self.call("server.create", name=name,
                                    flavor="lab.small", image="lab-guest",
                                    host=victim, storage="shared"),
                          f"create {name}")
                s = self.call("server.show", name=name)
            wait_guest(s["addresses"])
            data[name] = (s["addresses"], guest(
                s["addresses"], "/cgi-bin/data-write?seed=9", 60)["sha256"])
            print(f"   {name} on {s['host']} (shared storage), data area "
                  f"sha256 {data[name][1][:12]}...")
        started = time.monotonic()
        self.lab.host_stop(victim)
        print(f"   {victim} powered off (its guests died with it)")
        while self.call("host.show", name=victim)["state"] == "up":
            time.sleep(0.2)
        print(f"   {victim} seen down after "
              f"{time.monotonic() - started:.1f} s; down is not enough to "
              "evacuate: fencing it")
        self.wait(self.call("host.fence", name=victim), f"fence {victim}")
        print(f"   {victim}: {self.call('host.show', name=victim)['state']}")
        result = self.call("host.evacuate", name=victim, max_parallel=2)
        self.wait(result, f"evacuate {victim}")
        from agent.cli.evacuate import REPORT_COLUMNS
        print(output.format_list(self.call(
            "host.evacuate_report", task_id=result["task_id"]),
            REPORT_COLUMNS))
        for name, (ip, written) in data.items():
            s = self.call("server.show", name=name)
            wait_guest(ip)
            read = guest(ip, "/cgi-bin/data-read", 60)["sha256"]
            print(f"   {name}: {s['status']} on {s['host']}, data area "
                  f"{'intact' if read == written else 'DIFFERENT'} "
                  f"(sha256 {read[:12]}...)")
        self.lab.host_start(victim)
        print(f"   {victim} powered on; the controller reconciles it "
              "before it serves")
        while self.call("host.show", name=victim)["state"] != "up":
            time.sleep(0.5)
        left = self.lab.host_exec(victim, ["virsh", "list", "--all",
                                           "--uuid"], check=False)
        uuids = {self.call("server.show", name=n)["id"] for n in names}
        stale = uuids & set((left or "").split())
        print(f"   {victim} is up again; its evacuated guests' domains "
              f"{'REMAIN: ' + ', '.join(stale) if stale else 'are gone'}; "
              "the shared disks were not touched")
        return names


    def rescue(self, names):
        name = next(n for n in names if self.call(
            "server.show", name=n)["status"] == "ACTIVE")
        say(f"rescue {name}: a rescue system booted with its own disk "
            "attached (vdb), then unrescue; data area checked")
        ip = self.call("server.show", name=name)["addresses"]
        wait_guest(ip)
        written = guest(ip, "/cgi-bin/data-write?seed=11", 60)["sha256"]
        self.wait(self.call("server.rescue", name=name), f"rescue {name}")
        s = self.call("server.show", name=name)
        print(f"   {name}: {s['status']}: {s['rescue']}")
        wait_guest(ip)
        seen = guest(ip, "/cgi-bin/data-read?disk=vdb", 60)["sha256"]
        print(f"   the rescue system reads {name}'s own disk: data area "
              f"{'intact' if seen == written else 'DIFFERENT'}")
        self.wait(self.call("server.unrescue", name=name),
                  f"unrescue {name}")
        status = wait_guest(ip)
        read = guest(ip, "/cgi-bin/data-read", 60)["sha256"]
        print(f"   {name}: {self.call('server.show', name=name)['status']} "
              f"on its own disk again (boot {status['boot'][:8]}), data "
              f"area {'intact' if read == written else 'DIFFERENT'}")

    def automatic_recovery(self):
        """An HA guest's host loses power; nobody types a command: the
        controller detects it ([ha] lease_time), fences it with its fence
        agent and evacuates the HA guest; the host's events say why."""
        victim = sorted(h["name"] for h in self.lab.status())[0]
        say(f"automatic recovery: {victim} loses power; its HA guest "
            "comes back elsewhere by itself")
        try:
            s = self.call("server.show", name="demo-ha")
        except DroverError:
            self.wait(self.call("server.create", name="demo-ha",
                                flavor="lab.small", image="lab-guest",
                                host=victim, storage="shared",
                                metadata={"ha": "true"}), "create demo-ha")
            s = self.call("server.show", name="demo-ha")
        wait_guest(s["addresses"])
        print(f"   demo-ha (--property ha=true) on {s['host']}")
        time.sleep(15)          # the lab controller's [ha] startup_grace
        started = time.monotonic()
        self.lab.host_stop(victim)
        print(f"   {victim} powered off")
        while True:
            s = self.call("server.show", name="demo-ha")
            if s["host"] != victim and s["status"] == "ACTIVE":
                break
            time.sleep(0.2)
        wait_guest(s["addresses"])
        print(f"   demo-ha ACTIVE on {s['host']} "
              f"{time.monotonic() - started:.1f} s after the power loss")
        from agent.cli.host import EVENT_COLUMNS
        print(output.format_list(self.call("host.events", name=victim),
                                 EVENT_COLUMNS))
        self.lab.host_start(victim)
        while self.call("host.show", name=victim)["state"] != "up":
            time.sleep(0.5)
        print(f"   {victim} is up again, reconciled")
        return ["demo-ha"]


def run(lab, count, image_path, progress=print):
    say("lab up: hosts with their own libvirtd, sshd and drover-agent")
    socket = fleet.up(lab, count, image_path, progress=progress)
    demo = Demo(lab, socket)
    from agent.cli.host import LIST_COLUMNS
    demo.table("host.list", LIST_COLUMNS)
    names = demo.boot_one_per_host()
    demo.show_guests(names)
    demo.cold_moves(names)
    names = demo.prediction(names)
    names = demo.live_moves(names)
    demo.snapshot_and_shelve(names[0])
    names += demo.evacuation()
    demo.rescue(names)
    names += demo.server_groups()
    demo.rebalance_dry_run()
    names += demo.automatic_recovery()
    from agent.cli.migrate import MIGRATION_COLUMNS
    say("migrations")
    demo.table("migration.list", MIGRATION_COLUMNS)
    demo.audit()
    say("done; explore with 'drover server list', 'drover host list', ...; "
        "remove everything with 'drover lab down'")
    print(json.dumps({"controller_socket": socket, "servers": names}))
    return 0
