"""The source agent's measurement for a prediction, against a fake
libvirt domain: libvirt's dirty rate (page sampling only) pooled with the
agent's own larger sample, the non-zero part of the memory from peeks,
the disk data of a block migration."""
import types

import libvirt
import pytest

from agent.common.errors import DroverError, InvalidInput
from agent.host.migration import inputs

MiB = 1 << 20


class FakeDomain:
    """``dirty_share`` of the memory (at its start) is rewritten every
    time the clock moves on; ``rate_mb`` is what libvirt's calculation
    says."""

    def __init__(self, memory=256 * MiB, nonzero_share=0.25, rate_mb=12,
                 finishes=True, dirty_share=0.0):
        self.memory, self.share = memory, nonzero_share
        self.rate_mb, self.finishes = rate_mb, finishes
        self.dirty_share = dirty_share
        self.generation = 0
        self.modes = []

    def isActive(self):
        return True

    def info(self):
        return [1, self.memory // 1024, self.memory // 1024, 1, 0]

    def startDirtyRateCalc(self, seconds, flags):
        self.modes.append(flags)

    def memoryPeek(self, offset, size, flags):
        assert flags == libvirt.VIR_MEMORY_PHYSICAL
        # The low ``share`` of memory holds data, the rest is zero; the
        # lowest ``dirty_share`` changes with every generation.
        if offset < self.memory * self.dirty_share:
            return bytes([1 + self.generation % 255]) * size
        if offset < self.memory * self.share:
            return b"\x01" * size
        return bytes(size)

    def blockInfo(self, target):
        return [1024 * MiB, {"vda": 300 * MiB, "vdb": 20 * MiB}[target], 0]

    def connect(self):
        return self

    def domainListGetStats(self, doms, stats):
        assert stats == libvirt.VIR_DOMAIN_STATS_DIRTYRATE
        status = libvirt.VIR_DOMAIN_DIRTYRATE_MEASURED if self.finishes \
            else libvirt.VIR_DOMAIN_DIRTYRATE_MEASURING
        return [(self, {"dirtyrate.calc_status": status,
                        "dirtyrate.megabytes_per_second": self.rate_mb})]


@pytest.fixture
def dom(mocker):
    fake = FakeDomain()
    clock = [1000.0]

    def sleep(seconds):     # time passes and the guest writes
        clock[0] += seconds
        fake.generation += 1
    mocker.patch.object(inputs.domains, "lookup", return_value=fake)
    mocker.patch.object(inputs.time, "sleep", side_effect=sleep)
    mocker.patch.object(inputs.time, "monotonic", lambda: clock[0])
    return fake


OPTS = types.SimpleNamespace(**{k: 0 for k in inputs.POLICY_OPTS})


def test_measures_memory_dirty_rate_and_disks(dom):
    dom.dirty_share = 12 / 256       # the agent's sample agrees
    got = inputs.measure(object(), "u", ("vda", "vdb"), 1, OPTS)
    assert got["memory_bytes"] == 256 * MiB
    assert got["dirty_bytes_per_s"] == pytest.approx(12 * MiB, rel=0.1)
    assert got["libvirt_dirty_bytes_per_s"] == 12 * MiB
    assert got["disk_bytes"] == 320 * MiB
    assert got["resident_bytes"] == pytest.approx(64 * MiB, rel=0.1)
    assert set(got["policy"]) == set(inputs.POLICY_OPTS)
    # Page sampling only: dirty-bitmap mode killed QEMU 7.2 under TCG.
    assert dom.modes == [libvirt.VIR_DOMAIN_DIRTYRATE_MODE_PAGE_SAMPLING]


def test_shared_storage_migration_copies_no_disk(dom):
    assert inputs.measure(object(), "u", (), 1, OPTS)["disk_bytes"] == 0


@pytest.mark.parametrize("seconds", [0, 11, "1"])
def test_bad_period_is_refused(dom, seconds):
    with pytest.raises(InvalidInput):
        inputs.measure(object(), "u", (), seconds, OPTS)


def test_a_calculation_that_never_ends_is_an_error(dom, mocker):
    dom.finishes = False
    clock = iter(range(0, 1000, 5))
    mocker.patch.object(inputs.time, "monotonic", lambda: next(clock))
    with pytest.raises(DroverError, match="did not finish"):
        inputs.measure(object(), "u", (), 1, OPTS)


def test_the_agents_larger_sample_outweighs_libvirts(dom):
    """libvirt samples 128 pages of a 256 MiB guest, the agent 2,048: a
    libvirt figure far off (24 MiB/s for a guest rewriting 16) moves the
    pooled rate by its share of the pages only."""
    dom.rate_mb, dom.dirty_share = 24, 16 / 256
    got = inputs.measure(object(), "u", (), 1, OPTS)
    assert got["sampled_dirty_bytes_per_s"] == pytest.approx(16 * MiB,
                                                             rel=0.1)
    pooled = got["dirty_bytes_per_s"] / MiB
    assert 16 < pooled < 17.5
    assert got["dirty_bytes_per_s"] == inputs.pooled_rate(
        24 * MiB, got["sampled_dirty_bytes_per_s"], 256 * MiB, 2048)


def test_a_guest_that_writes_nothing_measures_zero(dom):
    dom.rate_mb = 0
    assert inputs.measure(object(), "u", (), 1, OPTS)[
        "dirty_bytes_per_s"] == 0


def test_pooling_weighs_by_pages_sampled():
    # A 4 GiB guest: QEMU samples 2,048 pages, as many as the agent.
    assert inputs.pooled_rate(10, 20, 4 << 30, 2048) == 15
    assert inputs.pooled_rate(10, 20, 256 * MiB, 0) == 10
