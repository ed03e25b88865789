"""The CPUs a process may use: its affinity mask and cgroup quota, not the host's count, and the
default workers that follow; the CPU's name in records."""

import os
import subprocess
import sys

import pytest

from sbibench.run.cpus import available_cpus, cgroup_cpu_limit, cpu_name
from sbibench.run.executors import default_workers

affinity = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs an affinity mask of at least 2 CPUs",
)


@affinity
def test_a_process_pinned_to_one_cpu_sees_one_and_runs_one_worker():
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "from sbibench.run.cpus import available_cpus\n"
        "from sbibench.run.executors import default_workers\n"
        "print(os.cpu_count(), available_cpus(), default_workers('processes'),"
        " default_workers('dask'), default_workers('serial'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    host, cpus, processes, dask, serial = map(int, result.stdout.split())
    assert host >= 2  # the host's count is not what the process may use
    assert (cpus, processes, dask, serial) == (1, 1, 1, 1)


@pytest.mark.parametrize(
    ("content", "limit"),
    [("max 100000\n", None), ("150000 100000\n", 2), ("50000 100000\n", 1), ("200000 100000", 2)],
)
def test_cgroup_v2_cpu_max(tmp_path, content, limit):
    (tmp_path / "cpu.max").write_text(content)
    assert cgroup_cpu_limit(tmp_path) == limit


@pytest.mark.parametrize(
    ("quota", "limit"), [("-1", None), ("150000", 2), ("50000", 1), ("400000", 4)]
)
def test_cgroup_v1_cfs_quota(tmp_path, quota, limit):
    controller = tmp_path / "cpu,cpuacct"
    controller.mkdir()
    (controller / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (controller / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(tmp_path) == limit


def test_no_cgroup_files_means_no_cap(tmp_path):
    assert cgroup_cpu_limit(tmp_path) is None
    assert cgroup_cpu_limit(tmp_path / "absent") is None


@affinity
def test_the_quota_caps_the_affinity_mask(tmp_path):
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert available_cpus(tmp_path) == len(os.sched_getaffinity(0))
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert available_cpus(tmp_path) == 1
    assert default_workers("processes", cpus=available_cpus(tmp_path)) == 1


def test_cpu_name_is_the_model_and_torchs_instruction_set(tmp_path):
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nvendor_id\t: X\nmodel name\t: Some CPU 9000\nflags\t: fpu\n"
    )
    assert cpu_name(cpuinfo) == f"Some CPU 9000 ({capability})"
    # no /proc (macOS, Windows): platform's name, still with the instruction set
    assert cpu_name(tmp_path / "absent").endswith(f" ({capability})")
    assert cpu_name(tmp_path / "absent") != f" ({capability})"
