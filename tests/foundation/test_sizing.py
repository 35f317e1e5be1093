"""How many daemon workers a host runs and how many model threads each gets (sizing.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meeting_governance.errors import ConfigError
from meeting_governance.sizing import (
    WORKER_BUDGET,
    available_memory,
    host_cores,
    plan_workers,
)

GiB = 1024**3


def test_the_host_is_what_this_process_may_use() -> None:
    assert host_cores() == len(os.sched_getaffinity(0))
    memory = available_memory()
    assert memory is not None and 0 < memory


def test_memory_is_still_known_where_proc_meminfo_is_hidden(tmp_path: Path) -> None:
    """The systemd unit's ProcSubset=pid hides /proc/meminfo: sizing falls back to the free
    memory (sysinfo), which is never more than MemAvailable."""
    hidden = available_memory(tmp_path / "no-meminfo")
    assert hidden is not None and 0 < hidden
    shown = available_memory()
    assert shown is not None and hidden <= shown * 1.05  # both move a little between the reads


def test_sqlite_runs_one_worker_with_every_core() -> None:
    plan = plan_workers(0, cores=8, threads=0, sqlite=True, gpu=False, memory=64 * GiB)

    assert (plan.workers, plan.threads) == (1, 8)
    assert "SQLite" in plan.reason


def test_more_than_one_worker_on_sqlite_is_refused() -> None:
    with pytest.raises(ConfigError, match="needs PostgreSQL"):
        plan_workers(2, cores=8, threads=0, sqlite=True, gpu=False, memory=None)


def test_auto_on_postgresql_is_one_single_threaded_worker_per_core() -> None:
    plan = plan_workers(0, cores=16, threads=0, sqlite=False, gpu=False, memory=64 * GiB)

    assert (plan.workers, plan.threads) == (16, 1)


def test_auto_fits_the_workers_into_memory() -> None:
    plan = plan_workers(0, cores=16, threads=0, sqlite=False, gpu=False, memory=6 * GiB)

    assert plan.workers == 6 and plan.threads == 2  # 6 GiB at 1 GiB each; 16 cores shared
    assert "memory" in plan.reason


def test_a_gpu_is_driven_by_one_worker() -> None:
    assert plan_workers(0, cores=16, threads=0, sqlite=False, gpu=True, memory=None).workers == 1


def test_set_threads_decide_how_many_workers_auto_starts() -> None:
    plan = plan_workers(0, cores=16, threads=4, sqlite=False, gpu=False, memory=None)

    assert (plan.workers, plan.threads) == (4, 4)


@given(requested=st.integers(0, 64), cores=st.integers(1, 256), threads=st.integers(0, 16),
       sqlite=st.booleans(), gpu=st.booleans(),
       memory=st.one_of(st.none(), st.integers(0, 512 * GiB)))
def test_a_plan_never_oversubscribes_the_cores_it_chose(
        requested: int, cores: int, threads: int, sqlite: bool, gpu: bool,
        memory: int | None) -> None:
    try:
        plan = plan_workers(requested, cores=cores, threads=threads, sqlite=sqlite, gpu=gpu,
                            memory=memory)
    except ConfigError:
        assert sqlite and requested > 1
        return
    assert plan.workers >= 1 and plan.threads >= 1
    assert plan.workers == (requested or plan.workers)
    if threads:
        assert plan.threads == threads
    elif plan.workers <= cores:
        assert plan.workers * plan.threads <= cores  # a share each, never more
    if not requested:
        assert plan.workers <= cores
        if memory is not None and memory >= WORKER_BUDGET:
            assert plan.workers <= memory // WORKER_BUDGET
        if sqlite or gpu:
            assert plan.workers == 1
