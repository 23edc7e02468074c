"""The migration prediction against real guests dirtying memory at
several rates (the lab guest's drover-dirty workload), with the source
agent's bandwidth capped so that the rates span converging and not:
the verdict of ``server migrate --live-migration --dry-run`` is what
the migration then does, and for the rates that converge the predicted
duration is within 30 % of the job's actual one.  This bounds the
model's error, not drover's speed; a guest whose dirtying comes in
bursts can be unlucky once, so a miss is measured again once."""
import time

import pytest

from helpers import guest_status, wait_guest
from live_helpers import agent_options, set_dirty_rate

# libvirt's page sampling (512 pages per GiB) reads 8 MiB/s as 8 +- 4:
# the converging rates stay well below the cap, the timeout one far above.
BANDWIDTH_MIBS = 24
# 6 s per GiB of (at least 2 GiB): the job is aborted after 12 s, three
# times what an idle guest's ~90 MiB of non-zero memory takes at 24 MiB/s
# (8 s made the idle case a coin toss on a loaded machine).
TIMEOUT_S_PER_GB = 6
ERROR_BOUND = 0.30


@pytest.fixture(scope="module")
def pair(fleet):
    names = sorted(fleet.hosts)
    return names[0], names[1]


def _dry_run(fleet, name, dest):
    return fleet.json("server", "migrate", name, "--live-migration",
                      "--dry-run", "--host", dest)


def _migrate(fleet, name, dest, *extra):
    code, _out, err = fleet.cli("server", "migrate", name,
                                "--live-migration", "--host", dest,
                                "--wait", *extra, check=False)
    return code, fleet.call("migration.show", name=name), err


def _dirtying_at(ip, rate):
    """Set the guest's workload to ``rate`` MiB/s and check that the guest
    reaches it, give or take a quarter (a stalled workload would make
    every verdict "precopy"; 64 MiB/s stays twice the bandwidth cap).
    The figure is the last pass's: the first pass at a higher rate also
    allocates the workload's file and, on a loaded machine, may be the
    only one done in 2.5 s; so wait (up to 15 s) for a pass that
    reaches it."""
    set_dirty_rate(ip, rate)
    time.sleep(2.5)
    deadline = time.monotonic() + 15
    status = guest_status(ip)
    while float(status["dirty_achieved"]) < 0.75 * rate and \
            time.monotonic() < deadline:
        time.sleep(1)
        status = guest_status(ip)
    assert float(status["dirty_achieved"]) >= 0.75 * rate, status
    return status


def _converging_run(fleet, name, src, dst):
    """(prediction, actual seconds); the guest ends on ``src`` again."""
    predicted = _dry_run(fleet, name, dst)
    code, mig, err = _migrate(fleet, name, dst, "--predict")
    assert code == 0, err
    actual = mig["progress"]["elapsed"]
    # Back with the destination's own (unlimited) policy: not measured.
    assert _migrate(fleet, name, src)[0] == 0
    return predicted, actual, mig


def test_verdict_and_duration_at_several_dirty_rates(fleet, servers, pair):
    src, dst = pair
    name = "pred-lab"
    servers.append(name)
    fleet.create(name, "lab.small", "--host", src, "--storage", "shared")
    ip = fleet.server(name)["addresses"]
    boot = wait_guest(ip)["boot"]
    with agent_options(fleet, src, bandwidth=BANDWIDTH_MIBS,
                       completion_timeout=TIMEOUT_S_PER_GB):
        for rate in (0, 8):
            _dirtying_at(ip, rate)
            for attempt in (1, 2):
                predicted, actual, mig = _converging_run(fleet, name, src,
                                                         dst)
                print(f"\n{rate} MiB/s: predicted {predicted['Duration s']} s,"
                      f" actual {actual} s")
                assert predicted["Verdict"] == "precopy", predicted
                assert mig["prediction"]["verdict"] == "precopy"
                error = abs(predicted["Duration s"] - actual) / actual
                if error <= ERROR_BOUND or attempt == 2:
                    break
            assert error <= ERROR_BOUND, (rate, predicted, actual)
        # Faster than the bandwidth: never converges; aborted at the
        # completion timeout, the guest stays on the source.
        _dirtying_at(ip, 64)
        predicted = _dry_run(fleet, name, dst)
        assert predicted["Verdict"] == "timeout", (
            f"measured {predicted['Dirty MiB/s']} MiB/s for 64 set: "
            f"{predicted}")
        code, mig, _err = _migrate(fleet, name, dst)
        assert code == 1
        assert mig["status"] == "failed"
        assert "completion timeout" in mig["error"]
        assert fleet.server(name)["host"] == src
    set_dirty_rate(ip, 0)
    assert wait_guest(ip)["boot"] == boot, "the guest rebooted"
