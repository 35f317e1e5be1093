"""How many daemon workers a host runs, and how many model threads each gets.

Measured (bench/README.md, "Throughput"): Whisper's decoder works on small matrices, so a
model thread per core in separate workers keeps the cores busier than one worker spreading
every core's threads over one recording; what it costs is memory, one model per worker. So
`daemon.workers = 0` (auto) means one worker per core on PostgreSQL, as many as memory allows
at `WORKER_BUDGET` each; SQLite allows one process, and a GPU is shared by one worker.
`transcription.cpu_threads = 0` gives each worker its share of the cores, never more: two
workers with all cores' threads each would fight over them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from meeting_governance.errors import ConfigError

WORKER_BUDGET = 1024**3  # bytes of memory planned per worker: ~0.5 GB measured, plus headroom


@dataclass(frozen=True)
class WorkerPlan:
    workers: int
    threads: int  # model threads per worker
    reason: str


def host_cores() -> int:
    """Cores this process may run on (CPU affinity and cgroup cpusets count, not the host's)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def available_memory(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Bytes of memory available for new processes (MemAvailable), None where unknown.

    Under the systemd unit (`ProcSubset=pid`) /proc/meminfo is hidden: then the free memory the
    kernel reports through sysinfo(2), which leaves out the page cache and so errs low (fewer
    workers, never more than fit)."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except ValueError:
        return None
    except OSError:
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            return None
    return None


def plan_workers(requested: int, *, cores: int, threads: int, sqlite: bool, gpu: bool,
                 memory: int | None) -> WorkerPlan:
    """Workers and threads each for this host; `requested` 0 means auto, `threads` 0 a share.

    Raises ConfigError for more than one worker on SQLite (one process only)."""
    if sqlite and requested > 1:
        raise ConfigError("--workers > 1 (daemon.workers) needs PostgreSQL (database.url / "
                          "MG_DATABASE__URL): SQLite supports one daemon process")
    if requested:
        workers, reason = requested, "daemon.workers / --workers"
    elif sqlite:
        workers, reason = 1, "auto: SQLite allows one daemon process"
    elif gpu:
        workers, reason = 1, "auto: one worker drives the GPU"
    else:
        by_cores = max(cores // threads, 1) if threads else cores
        by_memory = max(memory // WORKER_BUDGET, 1) if memory else by_cores
        workers = max(min(by_cores, by_memory), 1)
        reason = (f"auto: one worker per {threads or 1} core(s)" if workers == by_cores else
                  f"auto: {workers} worker(s) fit in the available memory at "
                  f"{WORKER_BUDGET // 1024**2} MiB each")
    return WorkerPlan(workers, threads or max(cores // workers, 1), reason)
