"""What a request costs the server's processes, as the kernel counts it: a gunicorn worker's
memory, and the CPU time of it and of PostgreSQL's backends (bench/data_access.py).

``VmHWM`` in ``/proc/<pid>/status`` is the peak resident set of a process since it started,
or since its peak was reset by writing ``5`` to ``/proc/<pid>/clear_refs`` (Linux 4.0 on; the
process's owner may): reset before a request and read after, it is that request's peak.
"""

from __future__ import annotations

import os
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Memory:
    """A process's resident set now and its peak, in bytes."""

    rss: int
    peak: int


def memory(pid: int) -> Memory:
    fields = {}
    for line in (PROC / str(pid) / "status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024  # the kernel writes kB
    return Memory(rss=fields["VmRSS"], peak=fields["VmHWM"])


def reset_peak(pid: int) -> None:
    """Make the peak the resident set as it is now."""
    (PROC / str(pid) / "clear_refs").write_text("5")


def gunicorn_workers(port: int) -> list[int]:
    """The pids of the workers of the gunicorn serving on 127.0.0.1:``port``: the children of
    the arbiter, the process whose command line binds it and whose parent's does not (a
    worker's command line is its arbiter's, or another with setproctitle installed)."""
    processes = _processes()
    bound = {pid for pid, _ in processes if _binds(pid, port)}
    arbiters = {pid for pid, parent in processes if pid in bound and parent not in bound}
    return sorted(pid for pid, parent in processes if parent in arbiters)


def _processes() -> list[tuple[int, int]]:
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone since the listing
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after it.
        parent = int(stat.rpartition(")")[2].split()[1])
        found.append((int(entry.name), parent))
    return found


def _binds(pid: int, port: int) -> bool:
    try:
        words = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"gunicorn" in b" ".join(words) and f"127.0.0.1:{port}".encode() in words


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) a process has used so far."""
    stat = (PROC / str(pid) / "stat").read_text()
    # After "pid (comm)": state is field 3, utime and stime are fields 14 and 15.
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backends_cpu(database: str) -> dict[int, float]:
    """The CPU time of each PostgreSQL backend connected to ``database`` now, by pid: the
    processes whose title (``postgres: <user> <database> <host> <state>``) names it."""
    found = {}
    for pid, _ in _processes():
        try:
            title = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")[0].decode()
        except (OSError, UnicodeDecodeError):
            continue
        words = title.split()
        if len(words) > 2 and words[0] == "postgres:" and words[2] == database:
            with suppress(OSError, ValueError):  # ended since the listing
                found[pid] = cpu_seconds(pid)
    return found
