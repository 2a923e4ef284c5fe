"""How the gateway suite reads its levels: the peak, the ratios, the targets."""

from __future__ import annotations

from ops.bench.gateway import Ceiling, Level, _ratios
from ops.bench.report import Latency


def level(target: str, concurrency: int, per_second: float, p99: float, cpu_us: float) -> Level:
    return Level(
        target=target,
        concurrency=concurrency,
        requests=int(per_second * 10),
        seconds=10.0,
        per_second=per_second,
        latency_ms=Latency(p50=p99 / 2, p99=p99, p999=p99 * 1.2, max=p99 * 1.5),
        errors=0,
        statuses={"202": int(per_second * 10)},
        loadgen_cpu_percent=10.0,
        server_cpu_percent=95.0,
        server_cpu_us_per_request=cpu_us,
    )


CEILING = [
    Ceiling(mode="sync", in_flight=1, per_second=5000.0, latency_ms=None, cpu_percent=60.0,
            payload_bytes=400),
    Ceiling(mode="async", in_flight=256, per_second=20000.0, latency_ms=None, cpu_percent=89.0,
            payload_bytes=400),
]  # fmt: skip


def test_the_peak_is_the_fastest_conveyor_level_with_its_own_p99() -> None:
    levels = [
        level("conveyor-create", 16, 2400.0, 9.0, 420.0),
        level("conveyor-complete", 16, 3400.0, 11.0, 280.0),
        level("conveyor-complete", 64, 4000.0, 43.0, 250.0),
        level("baseline", 16, 1200.0, 25.0, 760.0),
        level("baseline", 64, 1300.0, 70.0, 750.0),
    ]
    ratios = _ratios(levels, CEILING)
    assert (ratios.peak_route, ratios.peak_concurrency) == ("conveyor-complete", 64)
    assert (ratios.peak_per_second, ratios.p99_ms_at_peak) == (4000.0, 43.0)
    assert ratios.baseline_peak_per_second == 1300.0
    assert ratios.to_baseline == round(4000 / 1300, 3)
    assert (ratios.to_async_ceiling, ratios.to_sync_ceiling) == (0.2, 0.8)
    assert ratios.baseline_cpu_per_request_ratio == 3.0
    # The fastest under 20 ms is a slower level than the peak: it does not meet the target.
    assert (ratios.best_under_20ms, ratios.best_under_20ms_per_second) == (
        "conveyor-complete@16",
        3400.0,
    )
    assert ratios.meets_baseline_target
    assert not ratios.meets_ceiling_target
    assert not ratios.meets_p99_target


def test_targets_met_only_when_the_peak_itself_meets_them() -> None:
    levels = [
        level("conveyor-complete", 32, 10500.0, 19.0, 90.0),
        level("baseline", 32, 3000.0, 30.0, 300.0),
    ]
    ratios = _ratios(levels, CEILING)
    assert ratios.meets_baseline_target
    assert ratios.meets_ceiling_target
    assert ratios.meets_p99_target
    assert not _ratios(
        [*levels, level("baseline", 64, 3600.0, 60.0, 300.0)], CEILING
    ).meets_baseline_target


def test_the_floor_is_measured_beside_complete_never_as_conveyors_peak() -> None:
    levels = [
        level("conveyor-complete", 16, 3000.0, 12.0, 300.0),
        level("floor", 16, 7500.0, 3.0, 120.0),
        level("floor", 64, 7000.0, 30.0, 140.0),
    ]
    ratios = _ratios(levels, CEILING)
    assert (ratios.peak_route, ratios.peak_per_second) == ("conveyor-complete", 3000.0)
    assert ratios.floor_peak_per_second == 7500.0
    assert ratios.floor_to_async_ceiling == 0.375
    assert ratios.to_floor == 0.4
    # CPU per request, each side at its own peak.
    assert ratios.cpu_per_request_over_floor == 2.5
    # The floor stands for `complete`: a faster `create` peak is not held against it.
    with_create = _ratios([*levels, level("conveyor-create", 16, 3600.0, 9.0, 240.0)], CEILING)
    assert with_create.peak_route == "conveyor-create"
    assert (with_create.to_floor, with_create.cpu_per_request_over_floor) == (0.4, 2.5)
    # No floor measured (`--only conveyor`): nothing to divide by.
    alone = _ratios(levels[:1], CEILING)
    assert (alone.floor_peak_per_second, alone.to_floor, alone.cpu_per_request_over_floor) == (
        0.0,
        0.0,
        0.0,
    )
