"""drover fleet rebalance on the lab: CPU-burning guests packed on one
host are spread by the plan, measured before and after; a dry run
changes nothing; anti-affinity holds."""
import json
import statistics
import time

from helpers import guest_get, restart_controller, wait_for, wait_guest

BURN_MBPS = 32      # the guest's memory-dirtying workload burns CPU too


def _loads(fleet):
    """{host: guest CPU cores / vCPUs} as the controller measured."""
    return {r["Host"]: r["Guest CPU"] / r["vCPUs"]
            for r in fleet.json("fleet", "load")}


def _burning(fleet, names):
    cpu = {r["Server"]: r["CPU"]
           for r in fleet.json("fleet", "load", "--servers")}
    return all((cpu.get(n) or 0) > 0.05 for n in names)


def _stop_burning(fleet, names):
    for name in names:
        try:
            guest_get(fleet.server(name)["addresses"], "/cgi-bin/dirty?mbps=0")
        except Exception:       # noqa: BLE001 - best effort
            pass


def _placement(fleet):
    return {s["Name"]: s["Host"] for s in fleet.json("server", "list")}


def test_rebalance_spreads_cpu_burners_and_keeps_anti_affinity(fleet,
                                                               servers):
    a, b, _c = sorted(fleet.hosts)
    burners = ["rb-1", "rb-2", "rb-3"]
    servers.extend(burners + ["rb-idle"])
    fleet.cli("server", "group", "create", "rb-anti", "--policy",
              "anti-affinity")
    try:
        fleet.create("rb-idle", "lab.small", "--host", b, "--storage",
                     "shared", "--hint", "group=rb-anti")
        for name in burners:
            hint = ["--hint", "group=rb-anti"] if name == "rb-1" else []
            fleet.create(name, "lab.small", "--host", a, "--storage",
                         "shared", *hint)
        boots = {}
        for name in burners:
            ip = fleet.server(name)["addresses"]
            boots[name] = wait_guest(ip)["boot"]
            guest_get(ip, f"/cgi-bin/dirty?mbps={BURN_MBPS}")
        wait_for(lambda: _burning(fleet, burners), 60,
                 "every burner's CPU measured")
        before = _loads(fleet)
        spread_before = statistics.pstdev(before.values())

        placed = _placement(fleet)
        domains = fleet.all_domains()
        plan = fleet.json("fleet", "rebalance", "--dry-run",
                          "--threshold", "0.01", "--max-moves", "2")
        print(f"\nloads before {before}\nplan {plan}")
        assert plan["moves"], plan
        assert plan["score_after"] < plan["score_before"]
        assert all(m["Source"] == a for m in plan["moves"])
        # Each move's prediction, from the guest's dirty rate measured now
        # (a move predicted to reach its completion timeout has no
        # downtime: "-").
        assert all(m["Predicted Time"].endswith(" s")
                   and (m["Predicted Downtime"].endswith(" ms")
                        or m["Predicted Downtime"] == "-")
                   for m in plan["moves"]), plan["moves"]
        # The dry run changed nothing.
        assert _placement(fleet) == placed
        assert fleet.all_domains() == domains

        code, out, err = fleet.cli("fleet", "rebalance", "--execute",
                                   "--threshold", "0.01", "--max-moves",
                                   "2", "--max-parallel", "2", "--wait",
                                   "-f", "json")
        print(out, err)
        assert code == 0, err
        report = json.loads(out)
        # The plan is made again when it runs (the load has moved on
        # since the dry run): one or two moves, each of them done.
        moves = report["moves"]
        assert moves and all(r["Result"] == "moved" for r in moves), moves
        assert report["score_after"] < report["score_before"]
        after_placed = _placement(fleet)
        assert sum(after_placed[n] != a for n in burners) == len(moves)
        # Anti-affinity kept: rb-1 never joins rb-idle.
        assert after_placed["rb-1"] != after_placed["rb-idle"]
        for name in burners:
            ip = fleet.server(name)["addresses"]
            assert wait_guest(ip)["boot"] == boots[name]
            uuid = fleet.server(name)["id"]
            running = [h for h, d in fleet.all_domains().items()
                       if d.get(uuid) == "running"]
            assert running == [after_placed[name]]

        wait_for(lambda: _burning(fleet, burners), 60,
                 "the moved guests' CPU measured")
        after = _loads(fleet)
        spread_after = statistics.pstdev(after.values())
        print(f"measured spread {spread_before:.4f} -> {spread_after:.4f}")
        assert spread_after < spread_before
    finally:
        _stop_burning(fleet, burners)
        fleet.delete_servers(servers)
        fleet.cli("server", "group", "delete", "rb-anti", check=False)


def test_automatic_rebalance_waits_its_hold_time(fleet, servers):
    """[rebalance] enabled on the lab controller: with CPU burners packed
    on one host, rounds every 5 s hold for three imbalanced rounds
    (nothing moves meanwhile), then the third starts a rebalance that
    moves a burner live."""
    a = sorted(fleet.hosts)[0]
    burners = ["arb-1", "arb-2"]
    servers.extend(burners)
    for name in burners:
        fleet.create(name, "lab.small", "--host", a, "--storage", "shared")
    boots = {}
    for name in burners:
        ip = fleet.server(name)["addresses"]
        boots[name] = wait_guest(ip)["boot"]
        guest_get(ip, f"/cgi-bin/dirty?mbps={BURN_MBPS}")
    wait_for(lambda: _burning(fleet, burners), 60, "the burners measured")
    restart_controller(fleet, options={"rebalance": {
        "enabled": True, "interval": 5, "threshold": 0.01,
        "hold_rounds": 3, "max_moves": 1, "load_window": 10}})
    try:
        rounds = []     # (rounds held, acted, placement) of each round
        deadline = time.monotonic() + 120
        while not (rounds and rounds[-1][1]):
            assert time.monotonic() < deadline, rounds
            status = fleet.json("fleet", "rebalance", "--status")
            if status["last_round_at"] and (
                    not rounds or status["last_round_at"] != rounds[-1][3]):
                rounds.append((status["rounds"], status["last_acted"],
                               _placement(fleet), status["last_round_at"],
                               status["last_reason"]))
            time.sleep(1)
        print("\n".join(f"{r[0]} {r[1]} {r[4]}" for r in rounds))
        held = [r for r in rounds[:-1] if r[0] > 0]
        # The two rounds before the one that acted held, moving nothing.
        assert [r[0] for r in held[-2:]] == [1, 2], rounds
        assert all(r[2] == {n: a for n in burners} for r in held), rounds
        task_id = fleet.json("fleet", "rebalance", "--status")[
            "last_task_id"]
        assert fleet.wait_task(task_id)["state"] == "done"
        placed = _placement(fleet)
        assert sorted(placed[n] == a for n in burners) == [False, True]
        for name in burners:
            assert wait_guest(fleet.server(name)["addresses"])["boot"] == \
                boots[name]
    finally:
        _stop_burning(fleet, burners)
        restart_controller(fleet)
