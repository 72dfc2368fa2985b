"""The Ray executor: the same stage objects, run on a Ray cluster with Ray Data.

The plan's files become a Ray dataset; each stage becomes one operator of it: a stage that holds a
model runs on an actor pool (one model per actor, opened once, fed batches; with ``num_gpus``
when the cluster has GPUs), any other stage runs as plain tasks. Results stream back to the
driver batch by batch as they finish, and the driver's writer stores them: the SQLite library
stays the one truth whatever the cluster size.

Workers read the files by path: the cluster must see them at the same path on every node (a
shared filesystem). A worker that cannot read a file says so, naming its node.

Faults: Ray Data retries the task of a worker that died and restarts a dead actor, retrying its
batch (its defaults: ``max_retries``, ``max_restarts`` and ``max_task_retries`` of -1), so a killed
worker costs time, not results. A killed driver loses at most the batches
not yet written; the next run resumes like a local one.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from assetlens.enrich.errors import EnrichError
from assetlens.enrich.executors import Executor
from assetlens.enrich.executors.local import LocalExecutor
from assetlens.enrich.stages import Stage
from assetlens.enrich.work import FileWork

log = logging.getLogger(__name__)

TOKEN_FILE = Path.home() / ".ray" / "auth_token"  # where `ray start` keeps the cluster's token
FILES_PER_BLOCK = 16  # rows of the input dataset per block: small, so decoding spreads over the cluster
CONNECT_TIMEOUT_S = 5.0


class RayUnavailableError(EnrichError):
    """Ray is not installed, or the cluster cannot be reached."""


class RayExecutor:
    """Runs stages on the Ray cluster this process is connected to.

    Args:
        batch_size: Files per batch handed to a model stage (a video brings many frames).
    """

    def __init__(self, batch_size: int, owns_connection: bool = False) -> None:
        self.batch_size, self.owns_connection = batch_size, owns_connection

    def close(self) -> None:
        """Disconnect from the cluster if :meth:`connect` connected (a local cluster stops)."""
        if self.owns_connection:
            import ray

            ray.shutdown()

    @classmethod
    def connect(cls, address: str | None, batch_size: int, workers: int, *, required: bool) -> Executor:
        """Join a cluster, or start a local one.

        Args:
            address: The head's ``HOST:PORT``; None: a running cluster if ``required`` is False
                (``auto``: else run locally), a new local cluster if it is True (``ray``).
            batch_size: Files per batch of a model stage.
            workers: Decode threads of the local executor, when ``auto`` finds no cluster.

        Raises:
            RayUnavailableError: Ray is not installed, or the cluster at ``address`` cannot be
                reached (one line naming the address).
        """
        if address is not None and TOKEN_FILE.exists():
            # `ray start` turns token auth on; a client joining by address must say so before
            # Ray is imported (its core reads the mode once), or the head refuses it.
            os.environ.setdefault("RAY_AUTH_MODE", "token")
        try:
            import ray
        except ImportError as exc:
            if not required and address is None:
                return LocalExecutor(workers, batch_size)
            raise RayUnavailableError(
                "the Ray engine needs Ray: pip install 'assetlens[ray]' (or run with --engine local)"
            ) from exc
        _quiet(ray)
        if ray.is_initialized():
            return cls(batch_size)
        # Ray's core logs at ERROR that Ray Data's own actors keep their arguments in the object
        # store, on every run: true and harmless here.
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
        if address is not None:
            _check_reachable(address)
        try:
            if address is not None:
                ray.init(address=address, **_JOIN)
            elif not required:
                try:
                    ray.init(address="auto", **_JOIN)
                except ConnectionError:
                    return LocalExecutor(workers, batch_size)
            else:
                ray.init(include_dashboard=False, **_JOIN)
        except (ConnectionError, TimeoutError, ValueError, RuntimeError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RayUnavailableError(
                f"cannot reach the Ray cluster at {address or 'auto'}: {reason}"
            ) from exc
        return cls(batch_size, owns_connection=True)

    def run(self, stages: Sequence[Stage], work: Sequence[FileWork]) -> Iterator[list[FileWork]]:
        """Every file through every stage on the cluster, yielded batch by batch as they finish."""
        if not work:
            return
        import ray
        import ray.data

        cluster = ray.cluster_resources()
        scale = _cpu_scale(stages, float(cluster.get("CPU", 1.0)))
        gpus = int(cluster.get("GPU", 0))
        blocks = max(1, math.ceil(len(work) / FILES_PER_BLOCK))
        ds = ray.data.from_items([{"work": w} for w in work], override_num_blocks=blocks)
        for stage, cpus in zip(stages, _cpus(stages, scale), strict=True):
            batch = stage.resources.batch or (self.batch_size if stage.resources.model else FILES_PER_BLOCK)
            if stage.resources.model:
                use_gpu = gpus > 0 and stage.resources.gpus > 0
                pool = max(1, gpus if use_gpu else len(ray.nodes()))
                ds = ds.map_batches(
                    _worker_class(stage), batch_size=batch, batch_format="numpy",
                    compute=ray.data.ActorPoolStrategy(min_size=1, max_size=pool), num_cpus=cpus,
                    num_gpus=stage.resources.gpus if use_gpu else 0,
                )  # fmt: skip
            else:
                ds = ds.map_batches(_StageTask(stage), batch_size=batch, batch_format="numpy", num_cpus=cpus)
        for rows in ds.iter_batches(batch_size=None, batch_format="numpy"):
            yield list(rows["work"])


def _check_reachable(address: str) -> None:
    """Fail in seconds, in one line, when nothing answers at ``address`` (Ray itself retries for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise RayUnavailableError(
            f"bad Ray address {address!r}: give the head's HOST:PORT, e.g. 10.0.0.5:6379"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise RayUnavailableError(
            f"cannot reach the Ray cluster at {address}: {exc.strerror or exc} "
            "(is `ray start --head` running there?)"
        ) from exc


def _cpu_scale(stages: Sequence[Stage], cluster_cpus: float) -> float:
    """Shrink every stage's CPU request so one worker of each fits the cluster at once.

    On a small cluster (a laptop, 2 cores) an actor per model stage would otherwise hold every
    core and leave none to decode: CPU counts are Ray's bookkeeping, the threads share the cores.
    """
    wanted = sum(stage.resources.cpus for stage in stages)
    return min(1.0, cluster_cpus / wanted) if wanted else 1.0


def _cpus(stages: Sequence[Stage], scale: float) -> list[float]:
    """Each stage's CPU request, scaled; a task stage never asks exactly what the model stage
    after it asks: Ray Data would fuse the two (same remote arguments), and the tasks' work
    (decoding) would then run inside the model's actor, queued behind the model."""
    cpus = [round(stage.resources.cpus * scale, 3) for stage in stages]
    for i in range(len(stages) - 1):
        if not stages[i].resources.model and stages[i + 1].resources.model and cpus[i] == cpus[i + 1]:
            cpus[i] = round(cpus[i] * 0.9, 3)
    return cpus


def _where() -> str:
    return f"node {socket.gethostname()} (pid {os.getpid()})"


def _run(stage: Stage, batch: dict[str, Any]) -> dict[str, Any]:
    works = stage(list(batch["work"]))
    # A file this node cannot read may be there on others: the message names the node.
    works = [
        replace(w, failure=replace(w.failure, reason=f"{w.failure.reason} on {_where()}"))
        if w.failure is not None and w.failure.stage == "read" and "on node" not in w.failure.reason
        else w
        for w in works
    ]
    return {"work": _objects(works)}


def _objects(works: list[FileWork]) -> Any:
    import numpy as np

    out = np.empty(len(works), dtype=object)
    out[:] = works
    return out


class _StageTask:
    """A stage without a model, as the function of Ray tasks (opened in each task: nothing to load)."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        self.stage.open()
        return _run(self.stage, batch)


class _StageActor:
    """One worker of a model stage: opens the stage (loads its model) once, then takes batches."""

    stage: Stage

    def __init__(self) -> None:
        self.stage.open()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        return _run(self.stage, batch)


def _worker_class(stage: Stage) -> type[_StageActor]:
    """An actor class that carries its stage (``EmbedWorker``...), which then needs no constructor
    argument: Ray would keep one in the object store, and warn that a restarted actor may lose it."""
    return type(f"{stage.name.title()}Worker", (_StageActor,), {"stage": stage})


_JOIN: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}


def _quiet(ray: Any) -> None:
    """Ray Data logs every operator's progress at INFO: the ingest has its own progress bar."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    # Its warnings speak of Ray's choices (the FileWork column is pickled, token auth is on).
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
