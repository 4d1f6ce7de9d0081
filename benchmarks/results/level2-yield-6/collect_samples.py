"""Every checked sample's source of this run, read from its state directory's MLflow store (each mechanism run logs
`mechanism.py`), into samples/NNN-<fixture>/r<round>-n<sample>-<name>.py: the run's commit (090ddc6) predates the
benchmark writing them itself (9db866b).

    python benchmarks/results/level2-yield-6/collect_samples.py /tmp/bilevel-level2-yield-XXXX
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from urllib.parse import urlparse

HERE = Path(__file__).resolve().parent


def main(state: Path) -> None:
    db = sqlite3.connect(state / "mlflow" / "mlflow.db")
    tags: dict[str, dict[str, str]] = {}
    for run, key, value in db.execute("select run_uuid, key, value from tags"):
        tags.setdefault(run, {})[key] = value
    written = 0
    for run, uri in db.execute("select run_uuid, artifact_uri from runs"):
        t = tags.get(run, {})
        if t.get("bilevel.kind") != "mechanism" or t.get("bilevel.mutation") == "as is":
            continue  # a parent checked as it is is the library's source at the commit
        _, number, fixture, _seen = t["bilevel.meta_run_id"].split("-", 3)
        attempt = int(t["bilevel.key"].rsplit("/a", 1)[1])
        source = Path(urlparse(uri).path) / "mechanism.py"
        folder = HERE / "samples" / f"{int(number):03d}-{fixture}"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"r{attempt // 100}-n{attempt % 100}-{t['bilevel.mechanism']}.py"
        target.write_text(source.read_text())
        written += 1
    print(f"{written} sample sources written under {HERE / 'samples'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
