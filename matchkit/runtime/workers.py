"""Worker processes for the CPU-bound encoding: how many, and how they start.

Workers come from a *fork server* (``multiprocessing`` "forkserver"): a clean process, without this process's
threads or open files, that forks each worker. In the ``matchkit hash`` command's own process the fork server is
preloaded with the encoders and started early (:mod:`matchkit.runtime.process`); a library caller's process is left
as it is, and its workers import the encoders themselves. Nothing secret is involved: the key reaches each worker
over the pool's pipe. A light module: importing it imports no data library.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from multiprocessing.context import BaseContext

from matchkit import settings

MAX_DEFAULT_WORKERS = 4


def ignore_interrupts() -> None:
    """A pool worker's first step: Ctrl-C reaches the whole process group, and the command's own process handles it
    (stops its workers, removes partial files, exits 130). A worker that also raised KeyboardInterrupt would print
    a traceback into the caller's stderr while the pool is torn down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def default_workers() -> int:
    """``MATCHKIT_WORKERS`` if set, else the usable cores (at most 4)."""
    configured = settings.workers()
    if configured is not None:
        return configured
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_WORKERS, cores))


def pool_context() -> BaseContext:
    """The multiprocessing context encoding pools use: a fork server (preloaded with the encoders when the command's
    process asked for it, :func:`matchkit.runtime.process.start_hash_process`)."""
    return multiprocessing.get_context("forkserver")
