"""Where the CPU goes during a run: per-process CPU seconds read from /proc (Linux)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _group(cmdline: str) -> str:
    if "localstack" in cmdline:
        return "sqs emulator (localstack)"
    if "moto" in cmdline:
        return "sqs emulator (moto)"
    if cmdline.startswith("postgres") or "/postgres " in cmdline or "bin/postgres" in cmdline:
        return "postgresql"
    if "login_etl" in cmdline or "login-etl" in cmdline:
        return "login-etl"
    return "other"


def snapshot() -> dict[str, float]:
    """CPU seconds used so far by every live process, summed by group."""
    used: dict[str, float] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        fields = stat.rsplit(")", 1)[1].split()
        group = _group(cmdline)
        used[group] = used.get(group, 0.0) + (int(fields[11]) + int(fields[12])) / _TICKS
    return used


def busy_seconds() -> float:
    """Machine-wide non-idle CPU seconds since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / _TICKS


def peak_rss_mb(pid: int) -> float:
    """The largest high-water RSS (VmHWM) of a process and its children, in MB.

    VmHWM starts afresh at exec, unlike rusage's ru_maxrss, which also counts the moment
    between fork and exec when the child still shares the (large) parent's pages.
    """
    peak = 0
    pids = [pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(child) for child in children]
    for each in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
    return peak / 1024
