"""Task runners from settings: threads (default), Dask (an existing scheduler or a local cluster), Ray.

Only trainings are submitted to the runner; everything else runs in the flow's own process. With Dask or Ray
the trainings run on the cluster's workers, which need this package installed (same environment) and the
workload's data at the same path (the cache directory: a shared filesystem on a real cluster).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from infra.settings import Settings


def task_runner_factory(settings: Settings, dask_address: str | None = None) -> Callable[[], Any]:
    """A callable that makes a fresh task runner for one flow run (runners are not shared between flows)."""
    kind = settings.task_runner
    if kind == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return lambda: ThreadPoolTaskRunner(max_workers=settings.max_workers)
    if kind == "dask":
        address = dask_address or settings.dask_address
        if not address:
            raise ValueError("task_runner=dask needs a scheduler address: set BILEVEL_DASK_ADDRESS or use local_dask_cluster")
        from prefect_dask import DaskTaskRunner

        return lambda: DaskTaskRunner(address=address)
    if kind == "ray":
        try:
            from prefect_ray import RayTaskRunner
        except ImportError as error:
            raise ValueError("task_runner=ray needs prefect-ray: pip install -e '.[ray]'") from error
        return lambda: RayTaskRunner(address=settings.ray_address) if settings.ray_address else RayTaskRunner()
    raise ValueError(f"unknown task runner {kind!r}")


@contextlib.contextmanager
def local_dask_cluster(workers: int) -> Iterator[str]:
    """A Dask cluster of worker processes on 127.0.0.1 for this process's lifetime; yields its address."""
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, silence_logs=40)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


@contextlib.contextmanager
def runner_for(settings: Settings) -> Iterator[Callable[[], Any] | None]:
    """The task-runner factory of a command: starts a local Dask cluster when Dask is asked for without an address."""
    if settings.task_runner == "dask" and not settings.dask_address:
        with local_dask_cluster(settings.max_workers) as address:
            yield task_runner_factory(settings, address)
    elif settings.task_runner == "threads":
        yield None  # flows keep their default runner; trainings are submitted to it
    else:
        yield task_runner_factory(settings)
