"""Stage by stage time and RSS of a partitioned verify, in this process.

Usage: python benchmarks/verify_partitioned_stages.py HASHED_DIR N [EXTRACT ...]
HASHED_DIR holds claims.parquet and the five extracts; the spill folder goes beside them and is removed.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

from matchkit.jobs.verify import open_inputs
from matchkit.jobs.verify_partitioned import verify_partitioned

EXTRACTS = ("education", "household", "civil_affairs", "only_child", "medical_insurance")


def rss_mb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) // 1024
    return 0


def main() -> int:
    folder, partitions = Path(sys.argv[1]), int(sys.argv[2])
    names = sys.argv[3:] or EXTRACTS
    started = time.time()

    def say(message: str) -> None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        print(f"{time.time() - started:7.1f}s rss={rss_mb()}MB peak={peak}MB  {message}", flush=True)

    claims, extracts = open_inputs(folder / "claims.parquet", [folder / f"{s}.parquet" for s in names])
    stats: dict[str, int] = {}
    verify_partitioned(claims, extracts, partitions=partitions, progress=say, stats=stats, spill_dir=folder)
    say(f"done {stats}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
