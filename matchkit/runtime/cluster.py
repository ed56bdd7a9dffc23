"""Where a job's partitions run: in this process, on Dask's multiprocessing scheduler, or on a Dask cluster.

This is the one scheduler layer of matchkit (SPEC §8). A partitioned job splits its work into tasks — top-level,
picklable functions over small arguments (paths, partition numbers) that write their big outputs to files and
return small results — and hands them to a :class:`Runner`::

    with open_runner(args.scheduler) as runner:
        summaries = runner.map(verify_partition, tasks)   # results in the order of ``tasks``

``--scheduler`` picks the runner:

- absent: this process, one task after another (what a single-partition run and the tests use);
- ``processes``: Dask's multiprocessing scheduler on this machine (``dask.compute(..., scheduler="processes")``);
- ``local``: a ``distributed.LocalCluster`` started for the run (one single-threaded worker process per core) and
  closed after it;
- ``tcp://HOST:PORT`` (or ``tls://``): an existing ``dask.distributed`` scheduler, used as it is. Its workers must
  see the run's input and output paths under the same names (a shared filesystem), as for ``dask.dataframe``'s
  ``to_parquet`` to a local path.

Dask is an optional extra (``pip install 'matchkit[dask]'``); asking for a scheduler without it is a
:class:`~matchkit.errors.MatchkitError` that says what to install. Nothing secret is ever a task argument: a task
that needs a key reads it from its key file, as the command does.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from matchkit.errors import MatchkitError

T = TypeVar("T")
R = TypeVar("R")

SCHEDULERS = ("local", "processes")  # besides an address: tcp://HOST:PORT, tls://HOST:PORT
ADDRESS_PREFIXES = ("tcp://", "tls://")
DASK_MISSING = "needs Dask, an optional extra: pip install 'matchkit[dask]'"


@dataclass(frozen=True)
class Scheduler:
    """A parsed ``--scheduler`` value: ``kind`` is ``inline``, ``processes``, ``local`` or ``address``."""

    kind: str
    address: str | None = None

    def describe(self) -> str:
        return self.address if self.kind == "address" and self.address else self.kind


INLINE = Scheduler("inline")


def parse_scheduler(value: str | Scheduler | None) -> Scheduler:
    """``None`` (run here), ``local``, ``processes`` or ``tcp://HOST:PORT`` / ``tls://HOST:PORT``."""
    if value is None:
        return INLINE
    if isinstance(value, Scheduler):
        return value
    text = value.strip()
    if text in SCHEDULERS:
        return Scheduler(text)
    if text.startswith(ADDRESS_PREFIXES):
        host_port = text.split("://", 1)[1]
        host, sep, port = host_port.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise MatchkitError(f"--scheduler {text!r}: an address must be tcp://HOST:PORT")
        return Scheduler("address", text)
    raise MatchkitError(f"--scheduler {text!r}: expected local, processes or tcp://HOST:PORT")


def _scheduler_argument(value: str) -> Scheduler:
    try:
        return parse_scheduler(value)
    except MatchkitError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _partitions_argument(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 1_000_000:
        raise argparse.ArgumentTypeError(f"--partitions {value!r}: expected a whole number from 1 to 1000000")
    return int(value)


def add_scheduler_arguments(parser: argparse.ArgumentParser, *, partitions: bool = True) -> None:
    """``--scheduler`` and (unless ``partitions=False``) ``--partitions N`` with the same words in every command."""
    parser.add_argument(
        "--scheduler", type=_scheduler_argument, default=None, metavar="local|processes|tcp://HOST:PORT",
        help="run the partitions on Dask: 'local' starts a LocalCluster on this machine, 'processes' uses Dask's "
        "multiprocessing scheduler, tcp://HOST:PORT an existing cluster whose workers see the same paths "
        "(needs pip install 'matchkit[dask]'; default: in this process)",
    )
    if partitions:
        parser.add_argument(
            "--partitions", type=_partitions_argument, default=None, metavar="N",
            help="split the work into N partitions (memory is bounded by a partition, not by the input; the "
            "output is the same byte for byte whatever N)",
        )


# ---- runners -----------------------------------------------------------------------------------------------------
class Runner:
    """Runs tasks and returns their results in order. This base class runs them here, one after another."""

    scheduler: Scheduler = INLINE

    @property
    def workers(self) -> int:
        """How many tasks run at once (what a job may size its partitions by)."""
        return 1

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        return [fn(item) for item in items]

    def imap(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """Like :meth:`map`, yielding each result as soon as it and every result before it are done."""
        for item in items:
            yield fn(item)


class _DaskProcessesRunner(Runner):
    def __init__(self, workers: int) -> None:
        self.scheduler = Scheduler("processes")
        self._workers = workers

    @property
    def workers(self) -> int:
        return self._workers

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        import dask

        tasks = [dask.delayed(fn, pure=False)(item) for item in items]
        if not tasks:
            return []
        return list(dask.compute(*tasks, scheduler="processes", num_workers=self._workers))

    def imap(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        # The multiprocessing scheduler has no futures: compute in waves of one task per worker.
        pending = list(items)
        for start in range(0, len(pending), self._workers):
            yield from self.map(fn, pending[start:start + self._workers])


class _DistributedRunner(Runner):
    def __init__(self, client: Any, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self._client = client

    @property
    def workers(self) -> int:
        info = self._client.scheduler_info()
        threads = sum(int(worker.get("nthreads", 1)) for worker in info.get("workers", {}).values())
        return max(1, threads)

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        return list(self.imap(fn, items))

    def imap(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        listed = list(items)
        if not listed:
            return
        futures = self._client.map(fn, listed, pure=False)
        try:
            for future in futures:
                yield future.result()  # re-raises the task's own exception here
        finally:
            for future in futures:
                future.cancel()


def _import_dask(scheduler: Scheduler, *, distributed: bool) -> None:
    try:
        import dask  # noqa: F401

        if distributed:
            import distributed as _distributed  # noqa: F401
    except ImportError:
        raise MatchkitError(f"--scheduler {scheduler.describe()} {DASK_MISSING}") from None


@contextlib.contextmanager
def open_runner(scheduler: str | Scheduler | None = None, *, workers: int | None = None,
                connect_timeout: float = 30.0) -> Iterator[Runner]:
    """The runner for ``scheduler`` (see the module docstring); a LocalCluster or a client is closed on exit.

    ``workers``: worker processes for ``processes`` and ``local`` (default: the usable cores, as for hashing);
    ``connect_timeout``: seconds to wait for an existing cluster's scheduler.
    """
    from matchkit.runtime.workers import default_workers

    chosen = parse_scheduler(scheduler)
    if chosen.kind == "inline":
        yield Runner()
        return
    count = workers or default_workers()
    if chosen.kind == "processes":
        _import_dask(chosen, distributed=False)
        yield _DaskProcessesRunner(count)
        return
    _import_dask(chosen, distributed=True)
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        if chosen.kind == "local":
            cluster = stack.enter_context(LocalCluster(
                n_workers=count, threads_per_worker=1, processes=True, dashboard_address=None,
                silence_logs=logging.ERROR))
            client = stack.enter_context(Client(cluster))
        else:
            try:
                client = stack.enter_context(Client(chosen.address, timeout=f"{connect_timeout}s"))
            except OSError as exc:
                raise MatchkitError(f"--scheduler {chosen.describe()}: cannot reach the Dask scheduler "
                                    f"({type(exc).__name__})") from None
        yield _DistributedRunner(client, chosen)


def split_evenly(count: int, parts: int) -> Sequence[tuple[int, int]]:
    """``parts`` half-open ranges covering ``range(count)``, sizes differing by at most one (empty ranges dropped)."""
    parts = max(1, min(parts, count)) if count else 1
    bounds = [count * i // parts for i in range(parts + 1)]
    return [(lo, hi) for lo, hi in itertools.pairwise(bounds) if hi > lo]
