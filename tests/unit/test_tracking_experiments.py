"""MLflow experiments are marked as model training, so the UI opens them in its training view, not GenAI's."""

from __future__ import annotations

from pathlib import Path

from infra.mlflow_schema import EXPERIMENT_TAGS
from infra.tracking import Tracker


def test_new_and_old_experiments_are_marked_as_model_training(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, tmp_path / "artifacts")
    old_id = tracker.client.create_experiment("bilevel/old")  # made before the tag existed
    new_id = tracker.experiment_id("bilevel/new")
    assert tracker.experiment_id("bilevel/old") == old_id
    for experiment_id in (old_id, new_id):
        tags = Tracker(uri, tmp_path / "artifacts").client.get_experiment(experiment_id).tags
        assert {key: tags.get(key) for key in EXPERIMENT_TAGS} == EXPERIMENT_TAGS
