"""tinygpt's literal sites for real: each of the 12 searched sites of train.py, moved alone to a neighbouring valid
value, trains a few steps; the two coupled MLP-width literals are the known exception (one alone mismatches the
shapes: the crash and its traceback are what the LLM gets back)."""

import pytest

from infra.settings import load_settings
from search.run_spec import Budget
from workloads.tinygpt.workload import TinyGPT

pytestmark = pytest.mark.integration

TINY = Budget(mode="steps", value=2)
COUPLED = {"MLP.__init__:0", "MLP.__init__:1"}  # `4 * width` in c_fc and in c_proj must change together


def test_each_searched_site_of_tinygpt_trains_when_moved_alone(tmp_path) -> None:
    workload = TinyGPT(load_settings().cache_dir, device="cpu", eval_bytes=1024, edits="literals")
    workload.prepare()
    baseline = workload.space.baseline_config()
    outcomes = {}
    for site in workload.sites:
        spec = workload.space.spec(site.id)
        value = spec.nearby_values(spec.value)[0]
        source = workload.source_for({**baseline, site.id: value})
        assert source != workload.editable_source()
        outcomes[site.id] = workload.run(source, TINY, seed=0, run_dir=tmp_path / site.id.replace(":", "_"),
                                         timeout_s=300)
    assert len(outcomes) == 12
    for name, outcome in outcomes.items():
        if name in COUPLED:
            assert outcome.status == "crash" and "shape" in (outcome.error_tail or ""), name
        else:
            assert outcome.ok, f"{name}: {outcome.error_tail}"
