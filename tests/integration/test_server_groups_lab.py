"""Server groups on the lab: real guests placed, moved and drained by
their group's policy."""
import threading

from helpers import wait_guest


def _host_of(fleet, name):
    return fleet.server(name)["host"]


def _running_on(fleet, name):
    """The hosts libvirt runs the guest on (one, or the test fails)."""
    uuid = fleet.server(name)["id"]
    where = [h for h, doms in fleet.all_domains().items()
             if doms.get(uuid) == "running"]
    assert len(where) == 1, f"{name} runs on {where}"
    return where[0]


def test_anti_affinity_concurrent_boots_moves_and_drain(fleet, servers):
    hosts = sorted(fleet.hosts)
    assert len(hosts) == 3
    fleet.cli("server", "group", "create", "lab-anti", "--policy",
              "anti-affinity")
    names = ["aa-1", "aa-2", "aa-3"]
    servers.extend(names + ["aa-4"])
    errors = []

    def boot(name):
        try:
            fleet.create(name, "lab.small", "--storage", "shared",
                         "--hint", "group=lab-anti")
        except Exception as err:     # reported below
            errors.append(f"{name}: {err}")
    threads = [threading.Thread(target=boot, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        # Concurrent boots into the group never share a host: libvirt's
        # view, not only the database's.
        assert sorted(_running_on(fleet, n) for n in names) == hosts
        group = fleet.json("server", "group", "show", "lab-anti")
        assert len(group["members"]) == 3

        # The dry run names the group's filter for every host.
        rows = fleet.json("server", "create", "aa-4", "--flavor",
                          "lab.small", "--image", "lab-guest", "--hint",
                          "group=lab-anti", "--dry-run")
        assert {r["Filter"] for r in rows} == \
            {"ServerGroupAntiAffinityFilter"}
        # The fourth boot fails, naming the group filter.
        code, _out, err = fleet.cli("server", "create", "aa-4", "--flavor",
                                    "lab.small", "--image", "lab-guest",
                                    "--hint", "group=lab-anti", "--wait",
                                    check=False)
        assert code == 1 and "ServerGroupAntiAffinityFilter" in err, err

        # One member gone: the live migration of another may go only to
        # the host it freed, whatever the RAM weigher prefers.
        freed = _host_of(fleet, "aa-3")
        fleet.delete_servers(["aa-3", "aa-4"])
        boot_of_1 = wait_guest(fleet.server("aa-1")["addresses"])["boot"]
        fleet.cli("server", "migrate", "aa-1", "--live-migration", "--wait")
        assert _running_on(fleet, "aa-1") == freed
        assert wait_guest(fleet.server("aa-1")["addresses"])["boot"] == \
            boot_of_1

        # Draining aa-1's host: it may not join aa-2.
        other = _host_of(fleet, "aa-2")
        report = fleet.json("host", "drain", freed, "--wait")
        assert [r["Result"] for r in report] == ["moved"], report
        moved_to = _running_on(fleet, "aa-1")
        assert moved_to not in (freed, other)
        assert _running_on(fleet, "aa-2") == other
    finally:
        for h in hosts:
            fleet.cli("host", "enable", h, check=False)
        fleet.delete_servers(servers)
        fleet.cli("server", "group", "delete", "lab-anti", check=False)


def test_affinity_members_share_one_host(fleet, servers):
    fleet.cli("server", "group", "create", "lab-aff", "--policy",
              "affinity")
    servers.extend(["af-1", "af-2"])
    try:
        for name in ("af-1", "af-2"):
            fleet.create(name, "lab.small", "--hint", "group=lab-aff")
        assert _running_on(fleet, "af-1") == _running_on(fleet, "af-2")
    finally:
        fleet.delete_servers(servers)
        fleet.cli("server", "group", "delete", "lab-aff", check=False)
