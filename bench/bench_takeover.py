"""Takeover by a standby controller: from the SIGKILL of the leader to the
standby running the first step of the leader's task it resumed.

Brings up a two-host namespace lab (``dtko`` on 198.18.206.0/24) with two
controllers on a PostgreSQL server of the lab's own (drover lab up
--controllers 2 --database postgresql) and one guest.  Each run starts a
cold migration of the guest, waits until the task runs a step, SIGKILLs
whichever controller leads, and reads from the database when the other
one started a step of that task again (task_steps.started_at, full
precision; both clocks are this machine's).  The move is then finished
(resize confirm), the killed controller started again as a standby, and
the next run goes the other way.

The raw figure beside it: PostgreSQL's own hand-over of an advisory lock
from a SIGKILLed psycopg client to one polling for it as fast as it can,
the floor under any takeover built on that lock.  Target: <= 10 s.

    .venv/bin/python bench/bench_takeover.py [--repeat 3]
"""
import argparse
import datetime
import os
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlab import api, bench_fleet, drover  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from agent.lab import fleet as lab_fleet  # noqa: E402
from agent.lab.lab import unavailable_reason  # noqa: E402

LAB_NAME, LAB_NETWORK = "dtko", "198.18.206.0/24"
TARGET_S = 10.0
GUEST = "tko-guest"

_HOLDER = """
import sys, time, psycopg
conn = psycopg.connect(sys.argv[1], autocommit=True)
conn.execute("SELECT pg_advisory_lock(4242)")
print("held", flush=True)
time.sleep(600)
"""


def _utcnow():
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def raw_lock_handover(url):
    """Seconds from the SIGKILL of a lock holder to another session
    getting the lock (polling without pause)."""
    import psycopg
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, dsn],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with psycopg.connect(dsn, autocommit=True) as conn:
        killed = time.monotonic()
        holder.send_signal(signal.SIGKILL)
        while not conn.execute("SELECT pg_try_advisory_lock(4242)"
                               ).fetchone()[0]:
            pass
        took = time.monotonic() - killed
        conn.execute("SELECT pg_advisory_unlock(4242)")
    holder.wait()
    return took


def _leader(lab):
    with lab_fleet.leader_client(lab) as client:
        path = client.path
    index = next(i for i in range(2)
                 if lab_fleet.controller_socket(lab, i) == path)
    rec = next(d for d in lab.daemons() if d["host"] is None and
               d["name"] == lab_fleet.controller_name(index))
    return index, rec, path


def one_run(lab, engine):
    index, rec, socket = _leader(lab)
    host = api(socket, "server.show", name=GUEST)["host"]
    dest = next(h["name"] for h in lab.status() if h["name"] != host)
    task_id = api(socket, "server.migrate", name=GUEST,
                  host=dest)["task_id"]
    with engine.connect() as conn:
        while not conn.execute(text(
                "SELECT count(*) FROM task_steps WHERE task_id = :t AND "
                "state = 'started'"), {"t": task_id}).scalar():
            time.sleep(0.02)
    killed_at = _utcnow()
    os.kill(rec["pid"], signal.SIGKILL)
    resumed = None
    deadline = time.monotonic() + 60
    while resumed is None and time.monotonic() < deadline:
        with engine.connect() as conn:
            resumed = conn.execute(text(
                "SELECT min(started_at) FROM task_steps WHERE task_id = :t "
                "AND started_at > :k"), {"t": task_id,
                                         "k": killed_at}).scalar()
        time.sleep(0.05)
    if resumed is None:
        raise RuntimeError("no step resumed within 60 s")
    _, _, new_socket = _leader(lab)
    while api(new_socket, "task.show", id=task_id)["state"] == "running":
        time.sleep(0.5)
    drover(new_socket, "server", "resize", "confirm", GUEST, "--wait")
    lab.stop_daemon(None, lab_fleet.controller_name(index))
    lab_fleet.start_controller(lab, index, progress=lambda m: None)
    return (resumed - killed_at).total_seconds()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        sys.exit(f"bench_takeover: {reason}")
    with bench_fleet(LAB_NAME, LAB_NETWORK, hosts=2, controllers=2,
                     database="postgresql") as (lab, socket):
        drover(socket, "server", "create", GUEST, "--flavor", "lab.small",
               "--image", "lab-guest", "--wait")
        url = lab_fleet.database_url(lab)
        engine = create_engine(url)
        raw = [raw_lock_handover(url) for _ in range(args.repeat)]
        took = []
        for run in range(args.repeat):
            took.append(one_run(lab, engine))
            print(f"run {run + 1}: takeover {took[-1]:.2f} s")
        engine.dispose()
    med, raw_med = statistics.median(took), statistics.median(raw)
    print(f"\ntakeover, kill of the leader -> first resumed step "
          f"({args.repeat} runs): median {med:.2f} s, min {min(took):.2f}, "
          f"max {max(took):.2f}")
    print(f"raw PostgreSQL advisory-lock hand-over: median {raw_med:.3f} s "
          f"(min {min(raw):.3f}, max {max(raw):.3f})")
    print(f"ratio takeover / raw hand-over: {med / raw_med:.0f}x; target "
          f"<= {TARGET_S:.0f} s: {'met' if med <= TARGET_S else 'MISSED'}"
          f" ({med / TARGET_S:.2f} of it)")


if __name__ == "__main__":
    main()
