"""The start-up of a command's own process: what ``matchkit hash`` and ``matchkit link`` do to the process they run
in, and what every encoding worker does to itself. Never called by a library function: a library caller's process
(and the test runner's) keeps its state.

- :func:`withhold_pandas`: a ``sys.meta_path`` finder under which ``import pandas`` fails, so pyarrow takes its
  pandas-free paths (0.15-0.2 s saved per process that never touches a pandas object);
- :func:`keep_freed_memory`: glibc ``mallopt``, freed blocks kept for reuse;
- :func:`start_hash_process`: also preloads the worker fork server with the encoders and starts it now, while the
  command is still importing and reading its input (~0.3 s per worker otherwise);
- :func:`handle_sigterm`: SIGTERM (what schedulers and systemd send) unwinds the run as Ctrl-C does
  (:class:`Terminated`), the encoding workers stopped first; :func:`exit_now` leaves after an interrupted run's
  clean-up without waiting on the worker pool's threads.

:func:`matchkit.cli.main.main` calls the command's start-up when it runs as the process's entry point (no ``argv``
given); an encoding worker calls :func:`lean_process` in its initializer.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import NoReturn

from matchkit.runtime.workers import default_workers, pool_context

PRELOAD = ["matchkit.jobs.encoding"]


class _WithholdPandas:
    """A meta-path finder under which ``import pandas`` fails as if pandas were not installed."""

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("pandas is withheld in this process: matchkit's hash and link run without it")


def withhold_pandas() -> None:
    """Make this process run as if pandas were not installed: for processes that never need it, the encoding
    workers and the ``hash`` and ``link`` commands (never a library caller's process).

    pyarrow imports pandas, if it can, on its first conversion (``pa.array``, ``to_numpy``): 0.15–0.2 s of CPU per
    process that never touches a pandas object. Without pandas pyarrow takes its pandas-free paths, a configuration
    it supports. Subprocess tests prove those commands never load pandas and write the same output
    (``tests/test_parallel.py``: every schema and input format; ``tests/test_link_job.py``). No effect if pandas is
    already loaded.
    """
    import sys

    if "pandas" not in sys.modules and _WithholdPandas not in sys.meta_path:
        sys.meta_path.insert(0, _WithholdPandas)


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_HEAP_BLOCK_BYTES = 32 << 20  # glibc's own ceiling for its moving threshold, now fixed
_KEPT_FREE_BYTES = 64 << 20


def keep_freed_memory() -> None:
    """Ask glibc's malloc to keep freed memory for reuse instead of handing it back to the kernel at once.

    Encoding and linking allocate and free large numpy temporaries all the time (a Bloom-filter scatter array, a
    gathered column of filter words). By default glibc serves every block over 128 KiB-32 MiB by ``mmap`` and
    returns it on ``free``, so the next one is page-faulted and zeroed afresh: measured on the 100k FEBRL-like
    hash, 225,000 page faults and ~10 % of the CPU time. With the mmap threshold fixed at 32 MiB (glibc otherwise
    moves it, and hands back the blocks under it) and up to 64 MiB of free heap kept, the same hash takes 93,000.
    Blocks over 32 MiB still come from ``mmap`` and go back at once, so peak memory at a million records a side
    is not inflated (6.6 GB peak for the 1M x 1M link, 6.2 GB without this, 6.9 GB for the pandas version).
    Only glibc has ``mallopt``; elsewhere nothing changes.
    """
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc":
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this interpreter runs on
    except (OSError, AttributeError):
        return
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    for parameter, value in ((_M_MMAP_THRESHOLD, _HEAP_BLOCK_BYTES), (_M_TRIM_THRESHOLD, _KEPT_FREE_BYTES),
                             (_M_TOP_PAD, _KEPT_FREE_BYTES)):
        mallopt(parameter, value)


def lean_process() -> None:
    """Set up a process that only hashes or links (the ``hash`` and ``link`` commands and each encoding worker):
    pandas withheld (:func:`withhold_pandas`) and freed memory kept for reuse (:func:`keep_freed_memory`)."""
    withhold_pandas()
    keep_freed_memory()


def start_hash_process() -> None:
    """The ``hash`` command's process: lean (:func:`lean_process`), and the worker fork server preloaded with the
    encoders and started now (if workers will be used), so its imports overlap the command's own start-up."""
    lean_process()
    if default_workers() <= 1:
        return
    pool_context().set_forkserver_preload(PRELOAD)
    from multiprocessing import forkserver

    forkserver.ensure_running()


def start_link_process() -> None:
    """The ``link`` command's process: numpy and pyarrow only (pyarrow would otherwise import pandas, ~0.2 s)."""
    lean_process()


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that the run unwinds as it does on Ctrl-C: ``.partial`` files removed,
    an ``interrupted`` audit line (every clean-up that handles KeyboardInterrupt runs for it too)."""


def handle_sigterm() -> None:
    """The command's own process: SIGTERM raises :class:`Terminated` (never installed by a library function)."""
    signal.signal(signal.SIGTERM, _terminate)


def _terminate(signum: int, frame: object) -> None:
    """The command's SIGTERM handler (what schedulers and systemd send, to this process only).

    Ctrl-C reaches every process of the terminal's process group, the encoding workers included; SIGTERM reaches
    this one alone, so the workers are stopped here first: left running they would block for ever on the pool's
    pipes and keep the caller's stdout and stderr open. Then the run unwinds as on Ctrl-C.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one unwinding: a second SIGTERM must not cut the clean-up short
    stop_children()
    raise Terminated


def stop_children() -> None:
    """Stop this process's worker processes, and let a pool thread that still writes to one get EPIPE (which the
    pool expects) instead of a SIGPIPE that would kill this process before its clean-up."""
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    if "multiprocessing" in sys.modules:
        import multiprocessing

        for child in multiprocessing.active_children():
            child.terminate()


def exit_now(code: int) -> NoReturn:
    """Leave at once after an interrupted run's clean-up, as a process killed by a signal would: the worker pool's
    own threads may wait for ever on a worker stopped half-way through sending a result, and interpreter shutdown
    would join them. Only the finalizers that release (the pool's semaphores) run, not those that join threads."""
    stop_children()
    if "multiprocessing.util" in sys.modules:
        with contextlib.suppress(Exception):
            sys.modules["multiprocessing.util"]._run_finalizers(0)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
