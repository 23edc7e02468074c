"""Self-fencing on the real lab (own_fleet: the test cuts a host's link).

One lab, in order: a link cut shorter than the lease kills nothing; a
link cut longer than the lease makes the isolated host destroy its HA
guest (its plain guest runs on); the guest runs elsewhere; with the link
restored the host is reconciled and runs nothing evacuated.  A sampler
reads every host's running domains every 200 ms throughout (the cut host
inside its namespaces) and must never see a guest on two hosts.

Recovery elsewhere is automatic (recover_host): nobody types a command;
the guest must come back only after the controller's verdict
(host.lease_verdict) says "fenced".
"""
import time

import pytest

from coldmove import read_data, write_data
from helpers import Sampler, wait_for, wait_guest

pytestmark = pytest.mark.integration

LEASE_S = 10.0          # [ha] lease_time's default, the lab's


def _print_logs(fleet, host):
    """The self-fence lines of the host's agent and of the controller."""
    import glob
    for path in sorted(glob.glob(f"{fleet.lab.lab_dir}/**/*.log",
                                 recursive=True)):
        with open(path, errors="replace") as f:
            lines = [line for line in f if "fence" in line
                     or "lease" in line or "Traceback" in line]
        print(f"== {path}\n" + "".join(lines[-30:]))


def _show(fleet, host):
    return fleet.json("host", "show", host)


def test_link_cut_self_fence_and_return(own_fleet):
    fleet = own_fleet(3)
    cut, *others = sorted(fleet.hosts)
    # A host without power management: the lab gives every host its lab
    # fence agent, and a host with one is never asked to fence itself.
    fleet.cli("host", "set", cut, "--no-fence")
    ha = fleet.create("sf-ha", "lab.small", "--host", cut, "--storage",
                      "shared", "--property", "ha=true")
    plain = fleet.create("sf-plain", "lab.small", "--host", cut,
                         "--storage", "shared")
    written = write_data(ha["addresses"], 21)
    booted = {s["id"]: wait_guest(s["addresses"])["boot"]
              for s in (ha, plain)}
    wait_for(lambda: _show(fleet, cut).get("lease_last_renewal_s")
             is not None, 30, "no lease granted")
    sampler = Sampler(fleet, inside=[cut])
    try:
        # A blip well inside the lease: nothing is killed or moved.
        fleet.lab.link(cut, False)
        time.sleep(LEASE_S / 3)
        fleet.lab.link(cut, True)
        for s in (ha, plain):
            assert wait_guest(s["addresses"])["boot"] == booted[s["id"]]
        assert fleet.running_inside(cut) == {ha["id"], plain["id"]}
        assert _show(fleet, cut)["self_fenced"] is False
        # Wholly back (renewed, its peers reach it) before the next cut,
        # or the two cuts would be one longer outage.
        wait_for(lambda: _show(fleet, cut)["lease_last_renewal_s"] < 2.0
                 and fleet.call("host.lease_verdict", name=cut)["state"]
                 == "alive", 60, "the host not back after the blip")

        # The host's link cut for good: the isolated host destroys its HA
        # guest, and only that one.
        began = time.monotonic()
        fleet.lab.link(cut, False)
        wait_for(lambda: ha["id"] not in fleet.running_inside(cut), 60,
                 "the isolated host did not destroy its HA guest")
        destroyed_after = time.monotonic() - began
        assert plain["id"] in fleet.running_inside(cut)

        # Automatic recovery, after the verdict says "fenced" only.
        wait_for(lambda: fleet.call("host.lease_verdict", name=cut)
                 ["state"] == "fenced", 60, "the verdict never said fenced")
        fenced_after = time.monotonic() - began
        assert destroyed_after < fenced_after
        wait_for(lambda: fleet.server("sf-ha")["host"] in others
                 and fleet.server("sf-ha")["status"] == "ACTIVE", 90,
                 "the HA guest was not recovered elsewhere")
        recovered_after = time.monotonic() - began
        moved = fleet.server("sf-ha")
        assert read_data(ha["addresses"]) == written
        assert fleet.server("sf-plain")["host"] == cut   # not HA: stays

        # The link back: reconciled, its fence cleared, nothing evacuated
        # runs there; the plain guest ran throughout.
        fleet.lab.link(cut, True)
        wait_for(lambda: _show(fleet, cut)["self_fenced"] is False
                 and ha["id"] not in fleet.domains(cut), 60,
                 "the host was not reconciled")
        wait_for(lambda: _show(fleet, cut)["state"] == "up", 60,
                 "the host did not come back up")
    except AssertionError:
        _print_logs(fleet, cut)
        raise
    finally:
        sampler.stop()
    print(f"\nHA guest destroyed {destroyed_after:.1f} s after the cut; "
          f"verdict fenced after {fenced_after:.1f} s; ACTIVE elsewhere "
          f"after {recovered_after:.1f} s")
    assert sampler.samples > 0 and sampler.doubles == []
    assert ha["id"] not in fleet.running_inside(cut)
    assert fleet.domains(moved["host"])[ha["id"]] == "running"
    assert wait_guest(plain["addresses"])["boot"] == booted[plain["id"]]
