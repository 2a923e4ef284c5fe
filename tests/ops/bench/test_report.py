"""The benchmarks' percentiles, and the machine a report names."""

from __future__ import annotations

import random

from ops.bench.report import Latency, latency, machine, model_name


def test_percentiles_are_nearest_rank_in_milliseconds() -> None:
    seconds = [i / 1000 for i in range(1, 1001)]  # 1 ms .. 1000 ms
    random.Random(3).shuffle(seconds)
    assert latency(seconds) == Latency(p50=500.0, p99=990.0, p999=999.0, max=1000.0)


def test_few_samples() -> None:
    assert latency([]) == Latency(p50=0.0, p99=0.0, p999=0.0, max=0.0)
    assert latency([0.002]) == Latency(p50=2.0, p99=2.0, p999=2.0, max=2.0)
    # Of 100 values the 99th percentile is the 99th, not the largest.
    hundred = [i / 1000 for i in range(1, 101)]
    assert (latency(hundred).p50, latency(hundred).p99) == (50.0, 99.0)


INTEL = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu vme

processor\t: 1
model name\t: Intel(R) Xeon(R) Processor
"""
ARM = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd
CPU implementer\t: 0x41
"""


def test_the_machine_names_its_processor() -> None:
    # Runs on two VMs of one size but other processors do not compare: the report says which.
    assert model_name(INTEL) == "Intel(R) Xeon(R) Processor"
    assert model_name(ARM) == ""  # the report falls back to what the platform says
    model = machine()["cpu_model"]
    assert isinstance(model, str)
    assert model
    assert model.strip() == model
