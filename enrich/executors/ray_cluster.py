"""The Ray executor: the same stage objects, run on a Ray cluster.

The plan's files go in blocks (``batch_size`` files). Each block flows through the stages as a
chain of Ray calls whose inputs are the previous call's results, so blocks move from worker to
worker without passing through the driver: a stage that holds a model runs on an actor pool (one
model per actor, opened once, then fed blocks; with ``num_gpus`` when the cluster has GPUs), other
stages run as plain tasks (decoding spreads over every node), or in the call of the model stage
before them (each call moves the whole block through the object store). A model stage that wants
smaller batches (transcription: long, uneven files, one at a time) gets the block in pieces,
spread over its pool. Finished blocks stream back to the driver as they complete, a bounded
number in flight, and the driver's writer stores them: the SQLite library stays the one truth
whatever the cluster size.

Why not Ray Data: on this 2-core machine its streaming executor delivered 500 images at 0.58x
the local run's rate (first results after 8-11 s, long stalls from its resource budgeting),
where these chained calls reach about 0.8x (see BENCHMARKS.md, issue 11).

Workers read the files by path: the cluster must see them at the same path on every node (a
shared filesystem). A worker that cannot read a file says so, naming its node.

Faults: a dead actor is restarted and its calls retried (``max_restarts``/``max_task_retries``
-1); a task whose worker died is retried :data:`TASK_RETRIES` times. A block whose worker keeps
dying (a file that crashes the decoder, say) fails its files with the reason, and the run goes
on. A killed driver loses at most the blocks not yet written; the next run resumes.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from assetlens.enrich.errors import EnrichError
from assetlens.enrich.executors import Executor
from assetlens.enrich.executors.local import LocalExecutor
from assetlens.enrich.stages import Stage
from assetlens.enrich.work import Failure, FileWork

TOKEN_FILE = Path.home() / ".ray" / "auth_token"  # where `ray start` keeps the cluster's token
_TOKEN_VARS = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")  # or the token comes from these (KubeRay)
CONNECT_TIMEOUT_S = 5.0
TASK_RETRIES = 3
BLOCKS_PER_WORKER = 3  # blocks in flight per model actor: enough to keep it fed, little memory


class RayUnavailableError(EnrichError):
    """Ray is not installed, or the cluster cannot be reached."""


class RayExecutor:
    """Runs stages on the Ray cluster this process is connected to.

    Args:
        batch_size: Files per block (a model call's batch; a video brings many frames).
        owns_connection: :meth:`close` disconnects (the connection was made for this run).
        actors: Actors per model stage (0: one per node, or per GPU when the stage can use one).
    """

    def __init__(self, batch_size: int, owns_connection: bool = False, actors: int = 0) -> None:
        self.batch_size, self.owns_connection, self.actors = batch_size, owns_connection, actors

    @classmethod
    def connect(
        cls, address: str | None, batch_size: int, workers: int, *, required: bool, actors: int = 0
    ) -> Executor:
        """Join a cluster, or start a local one.

        Args:
            address: The head's ``HOST:PORT``; None: a running cluster if ``required`` is False
                (``auto``: else run locally), a new local cluster if it is True (``ray``).
            batch_size: Files per block.
            workers: Decode threads of the local executor, when ``auto`` finds no cluster.
            actors: Actors per model stage (0: one per node or GPU).

        Raises:
            RayUnavailableError: Ray is not installed, or the cluster at ``address`` cannot be
                reached (one line naming the address).
        """
        if address is not None and (TOKEN_FILE.exists() or any(map(os.environ.get, _TOKEN_VARS))):
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
        if ray.is_initialized():
            return cls(batch_size, actors=actors)
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
                ray.init(address="local", include_dashboard=False, **_JOIN)  # a new one, always
        except (ConnectionError, TimeoutError, ValueError, RuntimeError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RayUnavailableError(
                f"cannot reach the Ray cluster at {address or 'auto'}: {reason}"
            ) from exc
        return cls(batch_size, owns_connection=True, actors=actors)

    def close(self) -> None:
        """Disconnect from the cluster if :meth:`connect` connected (a local cluster stops)."""
        if self.owns_connection:
            import ray

            ray.shutdown()

    def run(self, stages: Sequence[Stage], work: Sequence[FileWork]) -> Iterator[list[FileWork]]:
        """Every file through every stage on the cluster, yielded block by block as they finish."""
        if not work:
            return
        import ray

        chain = _Chain(stages, self.actors)
        blocks = deque(list(work[i : i + self.batch_size]) for i in range(0, len(work), self.batch_size))
        in_flight: dict[Any, list[FileWork]] = {}
        window = max(2, BLOCKS_PER_WORKER * chain.widest)
        while blocks or in_flight:
            while blocks and len(in_flight) < window:
                block = blocks.popleft()
                in_flight[chain.submit(block)] = block
            [ready], _ = ray.wait(list(in_flight), num_returns=1)
            block = in_flight.pop(ready)
            try:
                yield ray.get(ready)
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.ActorDiedError) as exc:
                reason = (
                    f"the Ray worker handling it kept dying ({type(exc).__name__}); see the cluster's logs"
                )
                yield [
                    replace(w, failure=Failure("worker", reason)) if w.failure is None else w for w in block
                ]
            except ray.exceptions.RayTaskError as exc:  # a bug in a stage: as the local executor, stop
                raise exc.as_instanceof_cause() from None


class _Chain:
    """The stages as Ray calls: a task per run of plain stages, an actor pool per model stage.

    Each call hands its whole block to the next through the object store, so stages share calls
    where they can: plain stages in a row run in one task (decode, then hashing), and the plain
    stages after a model stage run in its actor's call (tagging after CLIP). Every call takes the
    previous calls' results as its inputs (Ray passes them worker to worker) and concatenates
    them, so a block may be cut into slices for a pool and joined by the next call.
    """

    def __init__(self, stages: Sequence[Stage], actors: int) -> None:
        import ray

        cluster = ray.cluster_resources()
        gpus, nodes = int(cluster.get("GPU", 0)), sum(1 for n in ray.nodes() if n.get("Alive"))
        on_gpu = [gpus > 0 and stage.resources.gpus > 0 for stage in stages]
        sizes = [
            (actors or max(1, gpus if gpu else nodes)) if stage.resources.model else 1
            for stage, gpu in zip(stages, on_gpu, strict=True)
        ]
        shares = _cpu_shares(stages, sizes, float(cluster.get("CPU", 1.0)))
        task = ray.remote(_run_task)
        self._join = ray.remote(_join).options(num_cpus=0)
        # (the model stage or None, the task function of plain stages or None, refs)
        self.steps: list[tuple[Stage | None, Any, list[Any]]] = []
        for group in _groups(stages):
            head = stages[group[0]]
            plain = [stages[i] for i in group if not stages[i].resources.model]
            if not head.resources.model:
                share = max(shares[i] for i in group)
                self.steps.append(
                    (None, task.options(num_cpus=share, max_retries=TASK_RETRIES), [ray.put(plain)])
                )
                continue
            worker = ray.remote(_worker_class(head, plain)).options(
                num_cpus=shares[group[0]],
                num_gpus=head.resources.gpus if on_gpu[group[0]] else 0,
                max_restarts=-1,
                max_task_retries=-1,
            )
            self.steps.append((head, None, [worker.remote() for _ in range(sizes[group[0]])]))
        self.widest = max([len(pool) for _, fn, pool in self.steps if fn is None] or [1])
        self._turn = 0

    def submit(self, block: list[FileWork]) -> Any:
        """The block's chain of calls; returns the reference of its final result."""
        parts: list[Any] = [block]
        for head, fn, refs in self.steps:
            if head is None:
                parts = [fn.remote(refs[0], *parts)]
                continue
            size = head.resources.batch or len(block)
            slices = [(start, start + size) for start in range(0, len(block), size)]
            parts = [
                refs[(self._turn + n) % len(refs)].run.remote(piece, *parts) for n, piece in enumerate(slices)
            ]
        self._turn += 1
        return parts[0] if len(parts) == 1 else self._join.remote(*parts)


def _groups(stages: Sequence[Stage]) -> list[list[int]]:
    """The stages' indexes cut into calls: each model stage starts one, plain stages join the last."""
    groups: list[list[int]] = []
    for i in range(len(stages)):
        if stages[i].resources.model or not groups:
            groups.append([i])
        else:
            groups[-1].append(i)
    return groups


def _join(*parts: list[FileWork]) -> list[FileWork]:
    return [w for part in parts for w in part]


def _run_task(stages: Sequence[Stage], *parts: list[FileWork]) -> list[FileWork]:
    works = _join(*parts)
    for stage in stages:
        stage.open()  # nothing to load for a stage without a model
        works = stage(works)
    return _annotated(works)


class _StageActor:
    """One worker of a model stage: opens the stage (loads its model) once, then takes blocks,
    and runs the plain stages that follow it on each block before handing it on.

    The stages are class attributes (see :func:`_worker_class`), not constructor arguments: Ray
    keeps those in the object store, where a restarted actor might not find them.
    """

    stage: Stage
    followers: tuple[Stage, ...]

    def __init__(self) -> None:
        for stage in (self.stage, *self.followers):
            stage.open()

    def run(self, piece: tuple[int, int], *parts: list[FileWork]) -> list[FileWork]:
        """The stages over files ``piece`` (start, stop) of the joined parts."""
        start, stop = piece
        works = self.stage(_join(*parts)[start:stop])
        for follower in self.followers:
            works = follower(works)
        return _annotated(works)


def _worker_class(stage: Stage, followers: Sequence[Stage] = ()) -> type[_StageActor]:
    """An actor class carrying its stages, named after the model's (``EmbedWorker``: its processes' title)."""
    return type(
        f"{stage.name.title()}Worker", (_StageActor,), {"stage": stage, "followers": tuple(followers)}
    )


def _annotated(works: list[FileWork]) -> list[FileWork]:
    """A file this node cannot read may be there on others: the message names the node."""
    where = f"on node {socket.gethostname()} (pid {os.getpid()})"
    return [
        replace(w, failure=replace(w.failure, reason=f"{w.failure.reason} {where}"))
        if w.failure is not None and w.failure.stage == "read" and " on node " not in w.failure.reason
        else w
        for w in works
    ]


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


def _cpu_shares(stages: Sequence[Stage], sizes: Sequence[int], cluster_cpus: float) -> list[float]:
    """Each stage's CPU request, shrunk so that all its actors and one task of each plain stage fit.

    On a small cluster (a laptop, 2 cores) an actor per model stage would otherwise hold every
    core and leave none to decode, and a second actor could never start (its blocks would wait
    for it forever). CPU counts are Ray's bookkeeping: the threads share the cores anyway.
    """
    wanted = sum(stage.resources.cpus * size for stage, size in zip(stages, sizes, strict=True))
    scale = min(1.0, cluster_cpus / wanted) if wanted else 1.0
    return [math.floor(stage.resources.cpus * scale * 1000) / 1000 for stage in stages]  # never above


# Ray's own logging (token auth is on, and so on) asks nothing of the user; errors still show.
_JOIN: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
