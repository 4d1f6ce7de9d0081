"""Lineage across two nights: night 1's Level 2 writes a mechanism; night 2 starts from it (a lineage parent)
and its Level 2 writes an improved version of it as a mutant of night 1's credited version (each activated because it
beat the current search in simulation; night 2's fresh invention breaks the policy). The tree resolves the same ids in
S3 and MLflow."""

from __future__ import annotations

import pytest

from flows.meta_run import meta_run
from infra.lineage import best_versions, credited_versions, influence_index, mechanism_lineage, run_lineage
from infra.store import MechanismStore
from search.run_spec import Budget, MetaRunSpec, WorkloadRef
from tests.fixtures_s3 import s3_server  # noqa: F401  (fixture)
from tests.integration.scripted import proposal, scripted_settings, wired_resources, write_script

pytestmark = pytest.mark.integration

VERSION_1 = '''import helpers as h


class PatternMove:
    """Pattern search: repeat the last improving move, one step further in the same direction."""

    name = "pattern_move"

    def propose(self, ctx):
        kept = [view for view in ctx["trace"] if view["kept"] and h.value_of(view) is not None]
        if len(kept) < 2:
            return None
        before, after = kept[-2]["config"], kept[-1]["config"]
        changes = {}
        for name in h.editable(ctx):
            spec = h.param(ctx, name)
            old, new = before.get(name), after.get(name)
            if spec is None or spec["kind"] not in ("int", "float") or old == new:
                continue
            if spec.get("log") and old > 0 and new > 0:
                value = new * (new / old) ** STEPS
            else:
                value = new + STEPS * (new - old)
            value = min(max(value, spec["low"]), spec["high"])
            changes[name] = int(round(value)) if spec["kind"] == "int" else value
        if not changes:
            return None
        return [h.candidate(changes, None, "pattern move")]
'''.replace("import helpers as h", "import helpers as h\n\nSTEPS = 1")

# Night 2's "improvement": twice the step. On night 2's trace (the learning rate improved, then overshot) the
# surrogate's trend still points that way, so the simulation prefers the bolder move; the real trainings of the next
# generation are what confirms or refutes it (the lineage's credited Δ).
VERSION_2 = VERSION_1.replace("STEPS = 1", "STEPS = 2").replace("one step further", "two steps further")


BROKEN = """import os


class PatternMove:
    name = "pattern_move"

    def screen(self, ctx, candidates):
        os.listdir("/")
        return None
"""


def _night(tmp, store, meta_run_id: str, code: str, mechanisms: list[str], offset: float, mutant: str | None = None):
    answers = {
        "propose": [proposal({"LEARNING_RATE": 0.05 + offset}), proposal({"MOMENTUM": 0.7 + offset}),
                    proposal({"LEARNING_RATE": 0.02 + offset}), proposal({"MOMENTUM": 0.9 + offset})],
        "research.explore": [{"ideas": [{"problem": "p", "evidence": "e", "idea": "repeat the last improving move"}]}],
        "research.specify": [{"name": "pattern_move", "hooks": ["propose"], "state": "-", "behaviour": "b"}],
        "research.generate": [f"```python\n{code}```"],
    }
    # with a mutant: sample 0 is the fresh invention (it breaks the policy), sample 10 the mutant (mechanisms/population.py)
    by_key = {"research/g0/generate/r0/n0": f"```python\n{BROKEN}```",
              "research/g0/generate/r0/n10": f"```python\n{mutant}```"} if mutant else {}
    settings = scripted_settings(tmp, write_script(tmp / f"{meta_run_id}.json", answers, by_key))
    spec = MetaRunSpec(meta_run_id=meta_run_id, name="nightly", workload=WorkloadRef(reference="toy"), generations=2,
                       iterations=2, levels=["1", "2"], budget=Budget(mode="steps", value=100), mechanisms=mechanisms,
                       research_samples=2 if mutant else 1, research_mutants=1 if mutant else 0,
                       # lineage wiring on a 3-experiment toy trace: the pattern move's simulated gain is certified at
                       # 16 seeds; its 64-seed second look is not (that rule is tested in tests/unit/test_simulate.py)
                       research_confirm_seeds=0)
    res = wired_resources(settings, store=store)
    return meta_run(spec, res), res


@pytest.fixture(scope="module")
def two_nights(tmp_path_factory: pytest.TempPathFactory, s3_server):  # noqa: F811
    tmp = tmp_path_factory.mktemp("lineage")
    store = MechanismStore.from_endpoint(s3_server.endpoint, "lineage-test", connect_timeout_s=1.0, read_timeout_s=5.0)
    store.ensure_bucket()
    _night(tmp, store, "night-1", VERSION_1, [], 0.0)
    first = store.history("pattern_move")[0]
    _, res = _night(tmp, store, "night-2", VERSION_2, [f"pattern_move@{first.version_id}"], 0.001, mutant=VERSION_2)
    second = store.history("pattern_move")[0]
    return store, res.tracker, first, second, res.settings.runs_dir


def test_night_two_improved_night_ones_mechanism(two_nights) -> None:
    store, tracker, first, second, runs_dir = two_nights
    assert first.meta_run_id == "night-1" and second.meta_run_id == "night-2"
    assert second.version_id != first.version_id and second.parents == [first.version_id]
    # night 2's improvement is a mutant of night 1's credited version: cross-night memory seeds the population
    validation = store.get_document("pattern_move", second.version_id, "validation")
    assert validation["parent"] == f"pattern_move@{first.version_id}" and validation["change"] == "rule"
    assert validation["novelty"].startswith(f"derived from pattern_move@{first.version_id} (similarity ")


def test_mechanism_tree_walks_parents_research_and_influence(two_nights) -> None:
    store, tracker, first, second, runs_dir = two_nights
    tree = mechanism_lineage(store, tracker, runs_dir, f"pattern_move@{second.version_id}")
    assert tree.label == f"pattern_move@{second.version_id}"
    assert tree.details["mutated_from"] == f"pattern_move@{first.version_id} (rule)"
    kinds = [child.kind for child in tree.children]
    assert kinds == ["produced_by", "influenced", "mechanism"]
    assert "night-2, generation 0" in tree.children[0].label and tree.children[0].details["research_run"] != "not in MLflow"
    parent = tree.children[2]
    assert parent.label == f"pattern_move@{first.version_id}" and "night-1" in parent.children[0].label
    influenced_by_first = influence_index(runs_dir)[f"pattern_move@{first.version_id}"]
    nights = {item.meta_run_id for item in influenced_by_first.iterations}
    assert nights == {"night-1", "night-2"}  # generation 2 of night 1, and night 2 seeded with it


def test_run_tree_shows_seeds_and_what_the_night_produced(two_nights) -> None:
    store, tracker, first, second, runs_dir = two_nights
    tree = run_lineage(store, tracker, runs_dir, "night-2")
    assert tree.children[0].kind == "seeds" and first.version_id in tree.children[0].label
    produced = [c for c in tree.children if c.kind == "produced" and "(accepted)" in c.label]
    assert len(produced) == 1 and second.version_id in produced[0].label
    assert produced[0].details["parents"] == first.version_id
    assert produced[0].details["mutated_from"] == f"pattern_move@{first.version_id} (rule)"
    assert produced[0].details["novelty"].startswith(f"derived from pattern_move@{first.version_id}")
    # what the simulation promised, next to what the real trainings credit
    assert float(produced[0].details["simulated_delta"]) < 0 and "credited_delta" in produced[0].details


def test_best_versions_rank_by_credited_gain(two_nights) -> None:
    store, tracker, first, second, runs_dir = two_nights
    ranked = best_versions(store, runs_dir)
    index = influence_index(runs_dir)
    credits = {v.version_id: index[f"pattern_move@{v.version_id}"].credited_delta
               if f"pattern_move@{v.version_id}" in index else 0.0 for v in (first, second)}
    # The toy trains deterministically and the LLM is scripted: a version was credited with a kept improvement,
    # and the ranking names the best-credited version (one per name).
    assert any(credit < 0 for credit in credits.values()), credits
    assert ranked == [f"pattern_move@{min(credits, key=credits.get)}"]


def test_a_population_of_one_meta_runs_own_leaves_the_others_out(two_nights) -> None:
    """An ablation's repeats (population 'own') never inherit another repeat's credited mechanism."""
    store, tracker, first, second, runs_dir = two_nights
    own = {night: [v.meta_run_id for _, v in credited_versions(store, runs_dir, limit=5, meta_run_id=night)]
           for night in ("night-1", "night-2")}
    assert own["night-1"] + own["night-2"], "no credited version at all: nothing was tested"
    assert set(own["night-1"]) <= {"night-1"} and set(own["night-2"]) <= {"night-2"}
    assert credited_versions(store, runs_dir, limit=5, meta_run_id="another-repeat") == []
