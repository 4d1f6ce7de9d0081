"""The yield benchmark's session with the scripted provider, end to end on a development fixture (embedded S3, MLflow,
Prefect, sandbox, simulation): its record, and every checked sample's source read back from the store into the
results folder (not the mutants' parents checked as they are: those are the library's sources)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import level2_yield
from mechanisms.library import library_source

pytestmark = pytest.mark.integration


def test_a_session_records_every_checked_samples_source(tmp_path: Path) -> None:
    out = tmp_path / "out"
    level2_yield.run(1, None, out, scripted=True, state=tmp_path / "state", names=["control"])
    record = json.loads((out / "sessions" / "000.json").read_text())
    assert record["fixture"] == "control" and record["samples"]
    folder = out / "samples" / "000-control"
    written = {path.name: path.read_text() for path in folder.iterdir()}
    # one file per checked sample, none for an unusable answer or for a parent checked as it is (the library's)
    as_is = [s for s in record["samples"] if s["change"] == "as is"]
    assert as_is and all(s["parent"].startswith("library:") for s in as_is)
    assert len(written) == len(record["samples"]) - len(as_is)
    assert not any(name.startswith("r0-n3") for name in written)
    fresh = [text for name, text in written.items() if name.startswith("r0-n0-")]
    assert fresh and "class BestNeighbour" in fresh[0]
    mutants = [text for name, text in written.items() if name.startswith("r0-n1")]
    assert all(text not in {library_source(s["parent"].removeprefix("library:")) for s in as_is} for text in mutants)
