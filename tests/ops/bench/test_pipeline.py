"""The pipeline suite's window: which jobs count, and the figures made of them."""

from __future__ import annotations

from ops.bench.pipeline import Window


def test_only_jobs_ending_inside_the_window_count() -> None:
    window = Window(warmup=5.0, seconds=20.0)
    window.start, window.end = 100.0, 120.0
    window.record(99.9, 0.5, ok=True)  # still warming up
    window.record(100.0, 0.4, ok=True)
    window.record(110.0, 0.6, ok=True)
    window.record(119.0, 2.0, ok=False)
    window.record(120.0, 0.5, ok=True)  # after the end
    assert window.latencies == [0.4, 0.6]
    assert window.failed == 1


def test_a_side_divides_by_the_measured_time_and_the_jobs() -> None:
    window = Window(warmup=0.0, seconds=20.0)
    window.start, window.end = 0.0, 20.0
    for i in range(400):
        window.record(i / 20, 0.5 + i / 1000, ok=True)
    own = {"processing-1": 10.0, "upload": 2.0}
    beside = {"weed": 6.0, "postgres": 2.0}
    side = window.side("conveyor", "all four", 16, (own, beside))
    assert (side.jobs, side.failed, side.jobs_per_s) == (400, 0, 20.0)
    assert side.cpu_ms_per_job == 30.0  # 12 s over 400 jobs
    assert side.all_cpu_ms_per_job == 50.0  # 20 s over 400 jobs
    assert side.latency_ms.p50 == 699.0
    assert side.cpu_seconds == own
    assert side.beside_cpu_seconds == beside
