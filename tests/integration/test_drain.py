"""drover host drain on the lab: every running guest leaves the host, a
stopped one is reported left behind."""
import time

from helpers import wait_guest


def test_drain_moves_every_running_guest_away(fleet, servers):
    source = sorted(fleet.hosts)[0]
    names = ["dr-a", "dr-b"]
    boots = {}
    for name in names:
        servers.append(name)
        fleet.create(name, "lab.small", "--host", source, "--storage",
                     "shared")
        boots[name] = wait_guest(fleet.server(name)["addresses"])["boot"]
    servers.append("dr-off")
    fleet.create("dr-off", "lab.small", "--host", source)
    fleet.cli("server", "stop", "dr-off", "--wait")
    try:
        started = time.monotonic()
        report = fleet.json("host", "drain", source, "--max-parallel", "2",
                            "--wait")
        took = time.monotonic() - started
        print(f"\ndrain of {source} ({len(names)} guests, 2 at a time): "
              f"{took:.1f} s\n{report}")
        rows = {r["Server"]: r for r in report}
        for name in names:
            assert rows[name]["Result"] == "moved", rows[name]
            srv = fleet.server(name)
            assert srv["host"] != source and srv["status"] == "ACTIVE"
            assert rows[name]["Destination"] == srv["host"]
            assert wait_guest(srv["addresses"])["boot"] == boots[name]
        assert rows["dr-off"]["Result"] == "left behind"
        assert "not running" in rows["dr-off"]["Reason"]
        running = [u for u, s in fleet.domains(source).items()
                   if s == "running"]
        assert running == []
        host = fleet.call("host.show", name=source)
        assert not host["enabled"]
    finally:
        fleet.cli("host", "enable", source, check=False)
