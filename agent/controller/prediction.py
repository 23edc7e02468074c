"""How long a live migration will take, how long the guest will pause,
and whether it finishes at all: a pure model of QEMU's pre-copy under
drover's [migration] policy.

The reasoning
-------------
Pre-copy sends the guest's memory in rounds while the guest runs.  Round
0 sends every page that is not zero (QEMU sends a zero page as a header
of a few bytes, so ``resident_bytes``, not the guest's size, is what
costs bandwidth).  A round of ``x`` bytes takes ``x / B`` seconds at
bandwidth ``B``; meanwhile the guest dirties ``D * x / B`` bytes (at
most its working set), which the next round sends.  So the rounds are a
geometric series with ratio ``r = D / B``::

    x0 = resident,  x(k+1) = min(r * x(k), working_set)

At the end of each round QEMU compares what is left with what it may
send while the guest is paused: when ``x(k+1) / B <= allowed downtime``
it stops the guest and copies the remainder (the downtime).  With
``r < 1`` the series shrinks and the migration converges after about
``log(x0 * ... / (B * downtime)) / log(1 / r)`` rounds, in about
``x0 / (B - D)`` seconds (the sum of the series).  With ``r >= 1`` it
never shrinks: the remainder stays at the working set (or grows to it),
and the migration converges only if a later downtime step allows that
remainder, or if something else changes the game:

- the allowed downtime is not constant: drover's monitor raises it in
  ``downtime_steps`` steps from [migration] downtime to downtime_max,
  ``downtime_delay`` seconds per GiB apart (agent.common
  .migration_schedule, the same figures the agent's monitor enforces);
  until the monitor's first poll QEMU's own default of 300 ms applies;
- auto-converge (permit_auto_converge, not with post-copy): QEMU checks,
  at most once a second, whether the guest dirtied more than half of
  what was sent; the second such check throttles the vCPUs by 20 %, every
  second one after by 10 % more (up to 99 %), which scales ``D``
  down by the throttle;
- the completion timeout (completion_timeout seconds per GiB): the
  monitor aborts the job (timeout_action=abort; the guest stays on the
  source), or forces it (force_complete): post-copy if permitted (the
  guest switches to the destination at once, the rest follows at ``B``),
  else the guest is paused until the remainder is copied.

A block migration copies the disk data first (libvirt's NBD mirror runs
before the memory stream starts), ``disk_bytes / B`` seconds.  A fixed
``setup_s`` covers the destination's QEMU start and the handshake.

Verdicts: "precopy" (converges without help), "auto-converge"
(converges because the guest was throttled), "post-copy" (finishes by
switching to post-copy at the timeout), "timeout" (hits the completion
timeout and is aborted or paused there, or never finishes when no
timeout is set).

What the model leaves out: the guest's dirtying is taken as steady
(a bursty guest converges sooner or later than the mean says), the
disk's writes during the copy, compression and multifd.  Its inputs
are measured (agent.host.dirty_rate) or configured (see
``bandwidth``).
"""
import dataclasses
import math

from agent.common import migration_schedule as schedule
from agent.common.errors import InvalidInput

PRECOPY = "precopy"
AUTO_CONVERGE = "auto-converge"
POST_COPY = "post-copy"
TIMEOUT = "timeout"
VERDICTS = (PRECOPY, AUTO_CONVERGE, POST_COPY, TIMEOUT)

# QEMU's downtime-limit until drover's monitor sets its first step.
QEMU_DEFAULT_DOWNTIME_S = 0.3
# QEMU's auto-converge: cpu-throttle-initial, -increment, the largest
# throttle, the share of sent data dirtied that counts as too much
# (throttle-trigger-threshold), checked at most once a second.
THROTTLE_INITIAL = 0.2
THROTTLE_INCREMENT = 0.1
THROTTLE_MAX = 0.99
THROTTLE_TRIGGER = 0.5
THROTTLE_PERIOD_S = 1.0
MAX_ROUNDS = 200_000
MiB = 1 << 20


@dataclasses.dataclass(frozen=True)
class Prediction:
    """``duration_s``: job start to end (None: never ends);
    ``downtime_s``: the guest's pause at the switch-over (None: no
    switch-over, the job is aborted); ``rounds``: pre-copy rounds."""
    duration_s: float | None
    downtime_s: float | None
    verdict: str
    rounds: int
    reason: str

    def as_dict(self):
        return dataclasses.asdict(self)


def predict(memory_bytes, dirty_bytes_per_s, bandwidth_bytes_per_s,
            disk_bytes=0, max_downtime_s=QEMU_DEFAULT_DOWNTIME_S,
            completion_timeout_s=0, *, downtime_schedule=None,
            resident_bytes=None, working_set_bytes=None,
            permit_auto_converge=False, permit_post_copy=False,
            timeout_action="abort", setup_s=0.0, switchover_s=0.0):
    """The Prediction of one live migration (see the module docstring).

    ``downtime_schedule``: ``[(at_s, allowed_downtime_s), ...]`` sorted by
    time (default: ``max_downtime_s`` throughout); ``resident_bytes``:
    memory that is not zero (default all of it); ``working_set_bytes``:
    the most the guest dirties between two rounds (default its memory);
    ``timeout_action``: "abort" or "force_complete", as [migration].
    """
    memory, dirty, bandwidth = (float(memory_bytes), float(dirty_bytes_per_s),
                                float(bandwidth_bytes_per_s))
    if memory <= 0 or dirty < 0 or bandwidth <= 0 or disk_bytes < 0 \
            or completion_timeout_s < 0:
        raise InvalidInput("a prediction needs memory > 0, dirty rate >= 0, "
                           "bandwidth > 0, disk >= 0 and timeout >= 0")
    if timeout_action not in ("abort", "force_complete"):
        raise InvalidInput(f"unknown timeout action {timeout_action!r}")
    steps = tuple(downtime_schedule or ((0.0, max_downtime_s),))
    sim = _Sim(
        dirty=dirty, bandwidth=bandwidth, steps=steps,
        cap=min(float(working_set_bytes or memory), memory),
        timeout=float(completion_timeout_s),
        auto_converge=permit_auto_converge and not permit_post_copy,
        post_copy=permit_post_copy, action=timeout_action,
        switchover=float(switchover_s))
    resident = min(float(memory if resident_bytes is None
                         else resident_bytes), memory)
    return sim.run(float(setup_s) + disk_bytes / bandwidth, resident)


def policy_kwargs(opts, memory_bytes, disk_bytes=0):
    """The keyword arguments of ``predict`` that model the [migration]
    options ``opts`` (a mapping: downtime, downtime_max, downtime_steps,
    downtime_delay, completion_timeout, timeout_action,
    permit_auto_converge, permit_post_copy, monitor_interval) for a guest
    of ``memory_bytes`` moving ``disk_bytes`` of disk: the same steps and
    timeout the agent's monitor enforces, each step in force from the
    monitor's first poll at or after its time."""
    gb = schedule.data_gb(memory_bytes, disk_bytes)
    interval = float(opts.get("monitor_interval", 0.5))
    steps = [(0.0, QEMU_DEFAULT_DOWNTIME_S)]
    for at, ms in schedule.downtime_steps(
            opts["downtime_max"], opts["downtime_steps"],
            opts["downtime_delay"], gb, base_ms=opts["downtime"]):
        steps.append((max(interval, math.ceil(at / interval) * interval),
                      ms / 1000))
    return dict(
        downtime_schedule=_merge(steps),
        completion_timeout_s=schedule.completion_timeout(
            opts["completion_timeout"], gb),
        timeout_action=opts["timeout_action"],
        permit_auto_converge=bool(opts["permit_auto_converge"]),
        permit_post_copy=bool(opts["permit_post_copy"]))


def _merge(steps):
    """Later entries win over earlier ones at the same time."""
    out = {}
    for at, value in steps:
        out[round(at, 6)] = value
    return tuple(sorted(out.items()))


@dataclasses.dataclass
class _Sim:
    """The rounds of one migration, in simulated time."""
    dirty: float
    bandwidth: float
    steps: tuple
    cap: float
    timeout: float
    auto_converge: bool
    post_copy: bool
    action: str
    switchover: float
    throttle: float = 0.0
    high: int = 0
    rounds: int = 0

    def allowed(self, t):
        value = self.steps[0][1]
        for at, downtime in self.steps:
            if at <= t:
                value = downtime
        return value

    def rate(self):
        return self.dirty * (1 - self.throttle)

    def run(self, t, to_send):
        period_start, period_dirty, period_sent = t, 0.0, 0.0
        while self.rounds < MAX_ROUNDS:
            took = to_send / self.bandwidth
            if self.timeout and t + took >= self.timeout:
                into = max(self.timeout - t, 0.0)
                left = to_send - self.bandwidth * into + \
                    min(self.rate() * into, self.cap)
                return self.at_timeout(min(max(left, 0.0),
                                           max(to_send, self.cap)))
            self.rounds += 1
            dirtied = min(self.rate() * took, self.cap)
            t += took
            period_dirty += dirtied
            period_sent += to_send
            if self.auto_converge and \
                    t - period_start >= THROTTLE_PERIOD_S:
                self.check_throttle(period_dirty, period_sent)
                period_start, period_dirty, period_sent = t, 0.0, 0.0
            if dirtied / self.bandwidth <= self.allowed(t):
                return self.converged(t, dirtied)
            if dirtied >= to_send and not self.may_throttle():
                return self.steady(t, dirtied)
            to_send = dirtied
        return self.never(f"no convergence after {MAX_ROUNDS} rounds")

    def may_throttle(self):
        return self.auto_converge and self.throttle < THROTTLE_MAX

    def check_throttle(self, dirtied, sent):
        if dirtied <= THROTTLE_TRIGGER * sent:
            return
        self.high += 1
        if self.high >= 2:
            self.high = 0
            self.throttle = THROTTLE_INITIAL if not self.throttle else \
                min(self.throttle + THROTTLE_INCREMENT, THROTTLE_MAX)

    def steady(self, t, remainder):
        """Rounds no longer shrink (and no throttle will come): the
        migration converges at the first downtime step that allows the
        remainder, if that comes before the timeout."""
        took = remainder / self.bandwidth
        need = remainder / self.bandwidth
        later = [at for at, downtime in self.steps
                 if at > t and downtime >= need]
        if later and not (self.timeout and later[0] >= self.timeout):
            k = max(1, math.ceil((later[0] - t) / took))
            self.rounds += k
            return self.converged(t + k * took, remainder)
        if self.timeout:
            self.rounds += max(0, math.ceil((self.timeout - t) / took))
            return self.at_timeout(remainder)
        return self.never(
            f"memory is dirtied at {self.dirty / MiB:.0f} MiB/s against "
            f"{self.bandwidth / MiB:.0f} MiB/s of bandwidth and no "
            "completion timeout is set")

    def converged(self, t, remainder):
        downtime = remainder / self.bandwidth + self.switchover
        verdict = AUTO_CONVERGE if self.throttle else PRECOPY
        how = (f"converges after {self.rounds} rounds"
               + (f", the guest throttled to {100 - self.throttle * 100:.0f}"
                  " % of its CPU" if self.throttle else "")
               + f"; {remainder / MiB:.1f} MiB left at the switch-over")
        return Prediction(round(t + downtime, 3), round(downtime, 3),
                          verdict, self.rounds, how)

    def at_timeout(self, left):
        why = (f"does not converge within the completion timeout of "
               f"{self.timeout:g} s (dirty {self.dirty / MiB:.0f} MiB/s, "
               f"bandwidth {self.bandwidth / MiB:.0f} MiB/s)")
        copy = left / self.bandwidth
        if self.action == "abort":
            hint = ("; permit_post_copy with timeout_action=force_complete"
                    if not self.post_copy else
                    "; post-copy is permitted but only force-complete "
                    "switches to it with timeout_action=abort")
            return Prediction(round(self.timeout, 3), None, TIMEOUT,
                              self.rounds, f"{why}: aborted, the guest "
                              f"stays on the source{hint}")
        if self.post_copy:
            return Prediction(round(self.timeout + copy + self.switchover, 3),
                              round(self.switchover, 3), POST_COPY,
                              self.rounds, f"{why}: switches to post-copy "
                              f"there, {left / MiB:.1f} MiB follow")
        return Prediction(round(self.timeout + copy, 3),
                          round(copy + self.switchover, 3), TIMEOUT,
                          self.rounds, f"{why}: the guest is paused there "
                          f"until {left / MiB:.1f} MiB are copied")

    def never(self, why):
        return Prediction(None, None, TIMEOUT, self.rounds,
                          f"never converges: {why}")
