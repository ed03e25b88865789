"""The CPUs this process may use (affinity mask, cgroup quota) and which CPU it is (`cpu_name`,
written into every record)."""

from __future__ import annotations

import math
import os
import platform
from pathlib import Path

__all__ = ["CGROUP_ROOT", "available_cpus", "cgroup_cpu_limit", "cpu_name"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
# Where cgroup v1 mounts the CPU controller, relative to the root; "" for the root itself.
_V1_CONTROLLERS = ("cpu", "cpu,cpuacct", "cpuacct,cpu", "")


def _quota(folder: Path) -> int | None:
    """ceil(quota / period) of the cgroup at ``folder``; None when unlimited or unreadable."""
    try:
        fields = (folder / "cpu.max").read_text().split()  # v2: "max 100000" or "QUOTA PERIOD"
    except OSError:
        try:  # v1: quota -1 means unlimited; both in microseconds
            fields = [
                (folder / "cpu.cfs_quota_us").read_text().strip(),
                (folder / "cpu.cfs_period_us").read_text().strip(),
            ]
        except OSError:
            return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except (ValueError, IndexError):  # "max", or a file we do not understand: no cap
        return None
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))


def _own_paths() -> set[str]:
    """This process's cgroup paths (``/proc/self/cgroup``), relative; empty where unknown."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return set()
    return {line.split(":", 2)[2].strip("/") for line in lines if line.count(":") >= 2}


def cgroup_cpu_limit(root: str | Path = CGROUP_ROOT) -> int | None:
    """The CPU quota of this process's cgroups under ``root``, in whole CPUs; None if none.

    Reads cgroup v2's ``cpu.max`` (``max 100000`` or ``QUOTA PERIOD``) or cgroup v1's
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``, in ``root`` (a container sees its own
    cgroup there), in v1's ``cpu`` controller folder, and in the folders of this process's own
    cgroup and its ancestors (a systemd slice on a host); the tightest quota wins. A quota of
    1.5 CPUs counts as 2: the process may run on two CPUs, just not all the time.

    Arguments:
        root: where the cgroup file system is mounted; a test points it at a fake one.

    Example:
        >>> cgroup_cpu_limit("/no/such/folder") is None
        True
    """
    root = Path(root)
    folders = set()
    for relative in {"", *_own_paths()}:
        parts = Path(relative).parts
        for depth in range(len(parts) + 1):
            for controller in _V1_CONTROLLERS:
                folders.add(root / controller / Path(*parts[:depth]))
    limits = [limit for folder in folders if (limit := _quota(folder)) is not None]
    return min(limits, default=None)


def available_cpus(cgroup_root: str | Path = CGROUP_ROOT) -> int:
    """How many CPUs this process may use: its affinity mask, capped by its cgroup quota.

    Under taskset, SLURM or a container's CPU quota this is less than the host's
    ``os.cpu_count()``, which is never used where the affinity mask can be read.

    Arguments:
        cgroup_root: where the cgroup file system is mounted (see `cgroup_cpu_limit`).

    Returns:
        A whole number >= 1.

    Example:
        >>> 1 <= available_cpus() <= (os.cpu_count() or 1)
        True
    """
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows: no affinity mask to read
        count = getattr(os, "process_cpu_count", os.cpu_count)() or 1
    limit = cgroup_cpu_limit(cgroup_root)
    return max(1, min(count, limit) if limit is not None else count)


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """This CPU's model and the instruction set torch's kernels use on it, e.g. ``"AMD EPYC
    (AVX2)"``. A fit's digits depend on both (vectorised sums round differently on AVX2 and
    AVX-512), so a record made elsewhere with the same key may differ; records carry this to
    tell. The model is Linux's ``model name`` line, else what `platform` knows."""
    import torch

    model = ""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    return f"{model} ({torch.backends.cpu.get_cpu_capability()})"
