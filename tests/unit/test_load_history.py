"""The controller's load history: rates from consecutive samples of one
host, moves and restarts skipped, 10 minutes kept."""
from agent.controller.load import LoadHistory


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def sample(clock, guests, busy=0, total=0):
    return {"clock": clock, "cpu_busy": busy, "cpu_total": total,
            "ncpus": 2,
            "guests": [{"uuid": u, "cpu_time_ns": int(t * 1e9),
                        "memory_kb": m} for u, t, m in guests]}


def test_guest_cpu_rate_and_memory():
    clock = Clock()
    h = LoadHistory(clock=clock)
    h.record("a", sample(10.0, [("g", 1.0, 2048)], busy=100, total=400))
    assert h.guest_cpu("g") is None
    clock.now += 5
    h.record("a", sample(15.0, [("g", 3.5, 4096)], busy=300, total=800))
    assert h.guest_cpu("g") == 0.5
    assert h.guest_memory_mb("g") == 4.0
    assert h.host_cpu("a") == 0.5
    assert h.guest_host("g") == "a"


def test_a_move_and_a_restart_are_skipped():
    clock = Clock()
    h = LoadHistory(clock=clock)
    h.record("a", sample(10.0, [("g", 1.0, 1)]))
    clock.now += 5
    h.record("a", sample(15.0, [("g", 2.0, 1)]))        # 0.2 cores
    clock.now += 5
    h.record("b", sample(99.0, [("g", 0.1, 1)]))        # moved: new counter
    clock.now += 5
    h.record("b", sample(104.0, [("g", 0.0, 1)]))       # restarted
    assert h.guest_cpu("g") == 0.2
    assert h.guest_host("g") == "b"


def test_history_is_trimmed_and_window_honoured():
    clock = Clock()
    h = LoadHistory(history_s=600, clock=clock)
    h.record("a", sample(0.0, [("g", 0.0, 1)]))
    clock.now += 5
    h.record("a", sample(5.0, [("g", 5.0, 1)]))
    clock.now += 700
    h.record("a", sample(705.0, [("g", 5.0, 1)]))
    assert h.guest_cpu("g", window_s=60) is None
    clock.now += 700
    h.record("a", {"clock": 1405.0, "cpu_busy": 0, "cpu_total": 0,
                   "guests": []})
    assert h.usage() == {}
    h.record("a", None)
