"""The Level-2 yield benchmark's recorded fixtures (benchmarks/fixtures/level2/): `fixtures()` loads them, the held-out
tsp_anneal trace among them, recorded from the committed script (its hash), with a search that moved off the baseline;
every example script a fixture names is a fast workload for the real-gain arms."""

from __future__ import annotations

import hashlib
from pathlib import Path

from benchmarks import level2_yield
from benchmarks.real_gain import FAST_WORKLOADS

ROOT = Path(__file__).resolve().parents[2]


def test_the_held_out_tsp_anneal_fixture_loads_from_its_committed_script() -> None:
    found = {fixture["name"]: fixture for fixture in level2_yield.fixtures()}
    tsp = found["tsp_anneal"]
    workload = tsp["spec"].workload
    assert tsp["development"] is False and "held out" in tsp["note"]
    assert workload.reference == "examples/tsp_anneal/train.py" and workload.metric == "tour_length"
    assert workload.script_sha256 == hashlib.sha256((ROOT / workload.reference).read_bytes()).hexdigest()
    assert tsp["spec"].proposer == "tpe" and tsp["spec"].levels == ["1"] and set(workload.fixed) == {"SEED", "STEPS"}
    values = [e.outcome.value for e in tsp["trace"].experiments if e.outcome.value is not None]
    assert len(values) == 17 and len(set(values)) >= 8 and min(values) < values[0]  # the baseline comes first


def test_every_fixture_recorded_from_an_example_script_matches_it_and_is_a_fast_workload() -> None:
    for fixture in level2_yield.fixtures():
        workload = fixture["spec"].workload
        if workload.script_sha256 is None or not workload.reference.startswith("examples/"):
            continue
        assert workload.script_sha256 == hashlib.sha256((ROOT / workload.reference).read_bytes()).hexdigest(), fixture["name"]
        assert workload.reference in FAST_WORKLOADS, fixture["name"]
