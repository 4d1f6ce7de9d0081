"""The quality measure (benchmarks/real_gain.py `quality`, added after this run's code, b933be3) for the sessions
whose real gain this run recorded without it: each pair's arm traces are read from the run's state directory (the
arms are not trained again), their final best configurations re-measured on fresh SEEDs with the code at HEAD.

    PYTHONPATH=/work/main python benchmarks/results/level2-yield-5/backfill_quality.py STATE_DIR OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks import level2_yield
from benchmarks.real_gain import mean_ci, quality
from infra.settings import load_settings
from search.trace import Trace


def main() -> None:
    state, out = Path(sys.argv[1]), Path(sys.argv[2])
    fixtures = {f["name"]: f for f in level2_yield.fixtures()}
    for path in sorted((out / "sessions").glob("*.json")):
        record = json.loads(path.read_text())
        gain = record.get("real_gain")
        if not gain or "quality_delta" in gain:
            continue
        fixture = fixtures[record["fixture"]]
        spec = level2_yield.session_spec(record["session"], fixture, record["experiments_seen"])
        trace = level2_yield.cut(fixture["trace"], record["experiments_seen"])
        workdir = state / "real-gain" / f"{record['session']:03d}"
        for pair in gain["per_pair"]:
            for arm in ("without", "with"):
                folder = workdir / f"s{pair['seed']}-{arm}" / "runs"
                [trace_file] = list(folder.glob("*/trace.json"))
                after = Trace.model_validate_json(trace_file.read_text())
                assert after.state().best.value == pair[arm]["best"], "the arm's trace is not the one recorded"
                pair[arm]["best_config"] = after.state().best.config
            settings = load_settings(state_dir=workdir / f"s{pair['seed']}-quality")
            pair.update(quality(trace, spec, pair["without"], pair["with"], settings, workdir / f"s{pair['seed']}"))
        own = mean_ci([p["quality_delta"] for p in gain["per_pair"]])
        gain.update(quality_delta=own["mean"], quality_ci=[own["ci_low"], own["ci_high"]],
                    quality_backfilled="re-measured from the arms' traces by backfill_quality.py")
        path.write_text(json.dumps(record, indent=1))
        print(json.dumps({"session": record["session"], "quality_delta": gain["quality_delta"],
                          "quality_ci": gain["quality_ci"]}), flush=True)


if __name__ == "__main__":
    main()
