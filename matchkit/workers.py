"""Worker processes for the CPU-bound encoding: how many, and how they start.

Workers come from a *fork server* (``multiprocessing`` "forkserver"): a clean process, without this process's
threads or open files, that forks each worker. The fork server preloads the encoders, so every worker starts with
numpy, pandas, pyarrow and ``matchkit.encode`` already imported (~0.3 s each otherwise). :func:`warm_up` starts the
fork server early, while the calling process is still importing and reading its input, so that start-up is paid
once and overlaps other work. Nothing secret is involved: the key reaches each worker over the pool's pipe later.
A light module: importing it imports no data library.
"""

from __future__ import annotations

import multiprocessing
import os
from multiprocessing.context import BaseContext

WORKERS_ENV_VAR = "MATCHKIT_WORKERS"
MAX_DEFAULT_WORKERS = 4
PRELOAD = ["matchkit.encode.parallel"]


def default_workers() -> int:
    """``MATCHKIT_WORKERS`` if set, else the usable cores (at most 4)."""
    configured = os.environ.get(WORKERS_ENV_VAR, "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_WORKERS, cores))


def pool_context() -> BaseContext:
    """The multiprocessing context encoding pools use: a fork server that preloads the encoders."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def warm_up() -> None:
    """Start the fork server now (if workers will be used), so its imports overlap the caller's own start-up."""
    if default_workers() <= 1:
        return
    pool_context()
    from multiprocessing import forkserver

    forkserver.ensure_running()
