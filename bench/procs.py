"""Subprocesses of the benchmark, with the peak memory of their whole process tree.

:class:`Watched` starts a command and samples ``/proc/<pid>/status`` (VmHWM, VmRSS) of
the process and all its descendants every ``interval`` seconds until it ends. Each
process gets a role: ``cli`` (the command itself), ``forkserver`` (multiprocessing's fork
server), ``extract-worker`` (the pool's workers, forked from the fork server),
``resource-tracker``, or ``other``. VmHWM is a process's own high-water mark, so a sample
shortly before a process exits sees its peak.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Watched", "cpu_seconds", "run_watched"]

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def _parent(pid: int) -> int | None:
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    # The command name is in parentheses and may hold spaces; fields follow the last ")".
    return int(stat.rsplit(")", 1)[1].split()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (0.0 if it is gone)."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def _memory_kib(pid: int) -> tuple[int, int]:
    hwm = rss = 0
    for line in _read(f"/proc/{pid}/status").splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
        elif line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return hwm, rss


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent = _parent(int(entry))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry))
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(children.get(pid, []))
    return found


@dataclass
class _Process:
    role: str
    peak_kib: int = 0


@dataclass
class Watched:
    """A running command whose process tree is sampled; :meth:`wait` or :meth:`stop` it."""

    command: Sequence[str]
    env: Mapping[str, str]
    log: Path
    interval: float = 0.25
    started: float = 0.0
    ended: float = 0.0
    returncode: int | None = None
    processes: dict[int, _Process] = field(default_factory=dict)
    tree_peak_kib: int = 0
    signals_sent: list[str] = field(default_factory=list)
    _popen: subprocess.Popen[bytes] | None = None
    _done: threading.Event = field(default_factory=threading.Event)
    _sampler: threading.Thread | None = None

    def start(self) -> Watched:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        handle = self.log.open("wb")
        self.started = time.perf_counter()
        self._popen = subprocess.Popen(  # noqa: S603
            list(self.command),
            env=dict(self.env),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal job has
        )
        handle.close()
        self._sampler = threading.Thread(target=self._sample_loop, daemon=True)
        self._sampler.start()
        return self

    @property
    def pid(self) -> int:
        assert self._popen is not None
        return self._popen.pid

    def _role(self, pid: int) -> str:
        if pid == self.pid:
            return "cli"
        cmdline = _read(f"/proc/{pid}/cmdline").replace("\0", " ")
        parent = _parent(pid)
        if parent is not None and self.processes.get(parent, _Process("")).role == "forkserver":
            return "extract-worker"
        if "forkserver" in cmdline:
            return "forkserver"
        if "resource_tracker" in cmdline:
            return "resource-tracker"
        return "other"

    def _sample(self) -> None:
        total = 0
        for pid in _descendants(self.pid):
            hwm, rss = _memory_kib(pid)
            if not hwm:
                continue
            known = self.processes.get(pid)
            if known is None:
                known = self.processes[pid] = _Process(self._role(pid))
            known.peak_kib = max(known.peak_kib, hwm)
            total += rss
        self.tree_peak_kib = max(self.tree_peak_kib, total)

    def _sample_loop(self) -> None:
        while not self._done.is_set():
            self._sample()
            self._done.wait(self.interval)

    def wait(self, timeout: float | None = None) -> int:
        assert self._popen is not None
        code = self._popen.wait(timeout)
        self._finish(code)
        return code

    def stop(self, grace: float = 30.0) -> int:
        """Ctrl-C: SIGINT to its process group; SIGTERM, then SIGKILL, ``grace`` s apart.

        The signals that were needed are in :attr:`signals_sent`.
        """
        assert self._popen is not None
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if self._popen.poll() is not None:
                break
            self.signals_sent.append(sig.name)
            try:
                os.killpg(self._popen.pid, sig)
            except ProcessLookupError:
                break
            try:
                self._popen.wait(grace)
            except subprocess.TimeoutExpired:
                continue
        return self.wait()

    def _finish(self, code: int) -> None:
        if self.returncode is None:
            self.ended = time.perf_counter()
            self.returncode = code
            self._done.set()
            if self._sampler is not None:
                self._sampler.join()

    def leftovers(self, grace: float = 5.0) -> dict[int, str]:
        """Processes of its tree still alive ``grace`` s after it ended, with their roles."""
        deadline = time.monotonic() + grace
        while True:
            alive = {
                pid: process.role
                for pid, process in self.processes.items()
                if pid != self.pid and _read(f"/proc/{pid}/stat")
            }
            if not alive or time.monotonic() >= deadline:
                return alive
            time.sleep(0.25)

    @property
    def seconds(self) -> float:
        return (self.ended or time.perf_counter()) - self.started

    def peaks_mib(self) -> dict[str, float]:
        """The highest peak RSS of one process of each role, in MiB."""
        peaks: dict[str, float] = {}
        for process in self.processes.values():
            peaks[process.role] = max(peaks.get(process.role, 0.0), process.peak_kib / 1024)
        return {role: round(value, 1) for role, value in sorted(peaks.items())}

    def summary(self) -> dict[str, object]:
        counts: dict[str, int] = {}
        for process in self.processes.values():
            counts[process.role] = counts.get(process.role, 0) + 1
        return {
            "seconds": round(self.seconds, 3),
            "returncode": self.returncode,
            "peak_rss_mib": self.peaks_mib(),
            "processes": counts,
            "tree_peak_rss_mib": round(self.tree_peak_kib / 1024, 1),
            **({"signals_sent": self.signals_sent} if self.signals_sent else {}),
        }

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def run_watched(command: Sequence[str], env: Mapping[str, str], log: Path) -> Watched:
    """Run ``command`` to its end while sampling its tree; raise if it fails."""
    watched = Watched(command, env, log).start()
    code = watched.wait()
    if code != 0:
        tail = "\n".join(watched.output().splitlines()[-30:])
        raise RuntimeError(f"{' '.join(command)} exited {code}; log {log}:\n{tail}")
    return watched
