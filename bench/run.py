"""minimax-watcher benchmarks: the agent against the baselines a user would otherwise use, in one run.

    python bench/run.py            the full suite (about 10 minutes), writes bench/RESULTS.md
    python bench/run.py --quick    everything scaled down (about a minute), for CI smoke runs
    python bench/run.py --only latency,burst --results /tmp/r.md

The agent is the real `python -m watcher run` process; the API is `watcher.emulator.Emulator` in its own
process (bench/emu.py) on loopback, shared by the agent and every baseline. Baselines run in the same
invocation, just before or after the agent, so ratios hold on a noisy shared machine where absolute
figures do not. Nothing here asserts on a duration: the exit status is non-zero only when the benchmark
machinery itself failed (a workload raised, an upload never completed).

See bench/README.md for what each workload measures and how.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import hashlib
import json
import math
import os
import platform
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
TOKEN = "user:1-benchDONOTLEAK"
ACCOUNT = "123456"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Full sizes are the workloads; quick sizes only prove the machinery works.
SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "latency_files": 50,
        "burst_files": 2000,
        "big_bytes": 2 * 1000**3,
        "dataset_folders": 10,
        "dataset_per_folder": 10_000,
        "idle_seconds": 60.0,
        "backlog_steps": 4,
        "backlog_per_step": 2500,
        "backlog_hold": 20.0,
    },
    "quick": {
        "latency_files": 6,
        "burst_files": 150,
        "big_bytes": 48 * 1000**2,
        "dataset_folders": 10,
        "dataset_per_folder": 100,
        "idle_seconds": 4.0,
        "backlog_steps": 2,
        "backlog_per_step": 150,
        "backlog_hold": 2.0,
    },
}

# ---------------------------------------------------------------------------------------------------
# Image bytes: a PNG signature, an IHDR chunk, one IDAT chunk whose first 32 bytes are unique per file,
# and the IEND chunk at the very end (the agent's "looks complete" check). Not decodable, but exactly
# what the agent sniffs.

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IEND_CHUNK = b"\x00\x00\x00\x00IEND\xaeB\x60\x82"
_IHDR_DATA = struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)
IHDR_CHUNK = (
    struct.pack(">I", 13) + b"IHDR" + _IHDR_DATA + struct.pack(">I", zlib.crc32(b"IHDR" + _IHDR_DATA))
)
PNG_OVERHEAD = len(PNG_SIGNATURE) + len(IHDR_CHUNK) + 12 + len(IEND_CHUNK)  # 12: IDAT length+type+crc
POOL = os.urandom(1 << 20)  # 1 MiB of random bytes, repeated for big files
RUN_TAG = os.urandom(8).hex()  # so two runs never send the same bytes


def _tag(seed: str) -> bytes:
    return hashlib.sha256(f"{RUN_TAG}:{seed}".encode()).digest()


def png_bytes(seed: str, size: int) -> bytes:
    """`size` bytes (at most 1 MiB + overhead) of PNG-looking data, distinct per seed."""
    data_len = size - PNG_OVERHEAD
    if data_len < 32 or data_len - 32 > len(POOL):
        raise ValueError(f"unsupported size {size}")
    data = _tag(seed) + POOL[: data_len - 32]
    return (
        PNG_SIGNATURE + IHDR_CHUNK + struct.pack(">I", data_len) + b"IDAT" + data + b"\0\0\0\0" + IEND_CHUNK
    )


def write_big_png(path: Path, size: int) -> None:
    """A `size`-byte PNG-looking file made of the random 1 MiB block repeated (fast to produce)."""
    data_len = size - PNG_OVERHEAD
    with open(path, "wb") as out:
        out.write(PNG_SIGNATURE + IHDR_CHUNK + struct.pack(">I", data_len & 0xFFFFFFFF) + b"IDAT")
        out.write(_tag(path.name))
        left = data_len - 32
        while left > 0:
            block = POOL[: min(len(POOL), left)]
            out.write(block)
            left -= len(block)
        out.write(b"\0\0\0\0" + IEND_CHUNK)


# ---------------------------------------------------------------------------------------------------
# /proc readings


def proc_status_kb(pid: int, key: str) -> int:
    """VmRSS / VmHWM of a live process in kB; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (all its threads), from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            fields = stat_file.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_runtime_ns(pid: int) -> int:
    """Sum of every thread's on-CPU time in ns from /proc/PID/task/*/schedstat (finer than ticks)."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as schedstat:
                total += int(schedstat.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


def session_pids(sid: int) -> list[int]:
    """Live processes in session `sid` (a baseline started with start_new_session=True)."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as stat_file:
                fields = stat_file.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:
            pids.append(int(name))
    return pids


def meminfo_kb(key: str) -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ---------------------------------------------------------------------------------------------------
# Watching for sidecars with inotify (ctypes; no extra dependency)

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_Q_OVERFLOW = 0x00004000
_EVENT = struct.Struct("iIII")


class SidecarWatch:
    """Records when each `<image>.json` appears (renamed into place, or closed after writing).

    Timestamps are taken by a thread blocked on the inotify descriptor, so they are within a scheduler
    tick of the event. On a queue overflow the folders are listed and what is there counts as seen now.
    """

    def __init__(self, folders: list[Path]) -> None:
        self.fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.folders: dict[int, str] = {}
        for folder in folders:
            wd = _libc.inotify_add_watch(self.fd, str(folder).encode(), IN_CLOSE_WRITE | IN_MOVED_TO)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder} failed")
            self.folders[wd] = str(folder)
        self.seen: dict[str, float] = {}
        self.errors: dict[str, float] = {}
        self.overflows = 0
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _note(self, folder: str, name: str, now: float) -> None:
        if name.startswith(".") or not name.endswith(".json"):
            return
        if name.endswith(".error.json"):
            self.errors.setdefault(os.path.join(folder, name[: -len(".error.json")]), now)
        else:
            self.seen.setdefault(os.path.join(folder, name[: -len(".json")]), now)

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        while not self._stop:
            if not poller.poll(100):
                continue
            now = time.monotonic()
            try:
                data = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                continue
            with self._cond:
                offset = 0
                while offset < len(data):
                    wd, mask, _, length = _EVENT.unpack_from(data, offset)
                    raw = data[offset + _EVENT.size : offset + _EVENT.size + length]
                    offset += _EVENT.size + length
                    if mask & IN_Q_OVERFLOW:
                        self.overflows += 1
                        for folder in self.folders.values():
                            for name in os.listdir(folder):
                                self._note(folder, name, now)
                        continue
                    folder = self.folders.get(wd)
                    if folder is not None:
                        self._note(folder, raw.rstrip(b"\0").decode(errors="surrogateescape"), now)
                self._cond.notify_all()

    def wait(self, images: list[str], timeout: float) -> dict[str, float]:
        """Block until every image has a sidecar; returns image -> monotonic time it appeared."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                missing = [p for p in images if p not in self.seen]
                if not missing:
                    return {p: self.seen[p] for p in images}
                failed = [p for p in missing if p in self.errors]
                if failed:
                    raise RuntimeError(f"{len(failed)} file(s) got an error record, e.g. {failed[0]}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{len(missing)} of {len(images)} sidecars missing after {timeout:.0f} s, "
                        f"e.g. {missing[0]}"
                    )
                self._cond.wait(min(left, 1.0))

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        os.close(self.fd)

    def __enter__(self) -> SidecarWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------------
# The processes under test


class NotifyListener:
    """A fake $NOTIFY_SOCKET that timestamps READY=1 and keeps the latest STATUS=."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.ready_at: float | None = None
        self.status = ""
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.monotonic()
            for line in data.decode(errors="replace").split("\n"):
                if line == "READY=1" and self.ready_at is None:
                    self.ready_at = now
                elif line.startswith("STATUS="):
                    self.status = line[len("STATUS=") :]

    def close(self) -> None:
        self._stop = True
        self._thread.join(1)
        self.sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class EmulatorProcess:
    """bench/emu.py: the project's emulator in a process of its own, shared by agent and baselines."""

    def __init__(self, work: Path) -> None:
        self.log_path = work / "emulator.log"
        env = dict(os.environ, USEAPI_TOKEN=TOKEN, BENCH_ACCOUNTS=ACCOUNT)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(BENCH / "emu.py")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                text=True,
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the emulator did not start:\n{self.log_path.read_text()}")
        self.base_url: str = json.loads(line)["base_url"]
        self.pid = self.proc.pid

    def command(self, text: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class AgentProcess:
    """`python -m watcher run` with a config holding only the folders and the emulator's URL."""

    def __init__(self, ctx: Context, name: str, folders: list[Path], **settings: Any) -> None:
        self.dir = ctx.fresh_dir(f"agent-{name}")
        self.config_path = self.dir / "config.yaml"
        self.log_path = self.dir / "agent.log"
        config: dict[str, Any] = {"api": {"base_url": ctx.emulator.base_url}}
        config.update(settings)
        config["folders"] = [{"path": str(f)} for f in folders]
        self.config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        self.agent_src = ctx.agent_src
        self.proc: subprocess.Popen[bytes] | None = None
        self.notify: NotifyListener | None = None
        self.started_at = 0.0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 180.0) -> AgentProcess:
        self.notify = NotifyListener(self.dir / "notify")
        env = dict(os.environ, NOTIFY_SOCKET=self.notify.path, USEAPI_TOKEN=TOKEN)
        env.pop("JOURNAL_STREAM", None)
        env.pop("WATCHDOG_USEC", None)
        if self.agent_src:  # a scratch copy of the agent to compare against (see --agent-src)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [self.agent_src, env.get("PYTHONPATH")]))
        with open(self.log_path, "ab") as log:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "watcher", "run", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.dir,
            )
        deadline = time.monotonic() + timeout
        while self.notify.ready_at is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the agent exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no READY=1 from the agent within {timeout:.0f} s")
            time.sleep(0.005)
        return self

    @property
    def ready_seconds(self) -> float:
        assert self.notify is not None and self.notify.ready_at is not None
        return self.notify.ready_at - self.started_at

    def status(self) -> str:
        return self.notify.status if self.notify is not None else ""

    def tracked(self) -> int:
        """Files the agent holds as pending or uploading, from its STATUS= line."""
        found = re.search(r"(\d+) uploading; (\d+) pending", self.status())
        return int(found.group(1)) + int(found.group(2)) if found else 0

    def rss_kb(self) -> int:
        return proc_status_kb(self.pid, "VmRSS")

    def hwm_kb(self) -> int:
        return proc_status_kb(self.pid, "VmHWM")

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid)

    def runtime_ns(self) -> int:
        return proc_runtime_ns(self.pid)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.notify is not None:
            self.notify.close()
            self.notify = None
        if TOKEN in self.log():
            raise RuntimeError("the token appeared in the agent's log")

    def __enter__(self) -> AgentProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ShellHotFolder:
    """Baseline (1): bench/shell_hotfolder.sh, inotifywait piped into a curl-per-file bash loop."""

    def __init__(self, ctx: Context, name: str, folders: list[Path]) -> None:
        self.log_path = ctx.fresh_dir(f"shell-{name}") / "shell.log"
        env = dict(os.environ, USEAPI_TOKEN=TOKEN)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                ["bash", str(BENCH / "shell_hotfolder.sh"), ctx.emulator.base_url, *map(str, folders)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while "Watches established." not in self.log_path.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"inotifywait did not start: {self.log_path.read_text()}")
            time.sleep(0.01)

    def cpu_seconds(self) -> float:
        return sum(proc_cpu_seconds(pid) for pid in session_pids(self.proc.pid))

    def failures(self) -> int:
        return self.log_path.read_text(errors="replace").count("upload failed")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> ShellHotFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_client(ctx: Context, command: str, args: list[str]) -> dict[str, Any]:
    """bench/clients.py in a process of its own; returns its JSON line."""
    env = dict(os.environ, USEAPI_TOKEN=TOKEN)
    done = subprocess.run(
        [sys.executable, str(BENCH / "clients.py"), command, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"clients.py {command} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result.get("failed") and command != "done-walk":
        raise RuntimeError(f"clients.py {command}: {result['failed']} uploads failed")
    return result


def run_curl_upload(ctx: Context, path: Path) -> dict[str, float]:
    """Baseline (3): `curl -X POST -T FILE`; wall time, and peak RSS sampled while it runs."""
    url = f"{ctx.emulator.base_url}/files/?account={ACCOUNT}"
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            "curl", "-sS", "-f", "-o", "/dev/null", "-w", "%{http_code} %{size_upload}",
            "-X", "POST", "-T", str(path),
            # -T appends the file's name to a URL ending in "/"; keep the documented path as it is.
            "--request-target", urlsplit(url).path + "?" + urlsplit(url).query,
            "-H", f"Authorization: Bearer {TOKEN}", "-H", "Content-Type: image/png",
            url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    peak = 0
    while proc.poll() is None:
        peak = max(peak, proc_status_kb(proc.pid, "VmHWM"))
        time.sleep(0.05)
    seconds = time.monotonic() - started
    out, err = proc.communicate()
    code, sent = ([*out.split(), "", ""])[:2]
    if proc.returncode != 0 or code != "200" or int(float(sent or 0)) != path.stat().st_size:
        raise RuntimeError(f"curl -T failed: rc={proc.returncode} {out!r} {err!r}")
    return {"seconds": seconds, "vmhwm_kb": peak}


# ---------------------------------------------------------------------------------------------------
# Results


@dataclass
class Row:
    workload: str
    figure: str
    agent: str
    baselines: str
    ratio: str
    target: str
    verdict: str  # "met", "MISSED", "n/a"


@dataclass
class Outcome:
    name: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    load: str = ""


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def fmt_mb(kb: float) -> str:
    return f"{kb / 1024:.1f} MB"


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# Why a target is missed: causes found by profiling (py-spy, yappi, per-thread /proc figures) and by
# measuring prototypes with --agent-src. Printed under a workload whenever its verdict is MISSED.
WHY_MISSED = {
    "latency-shell": (
        "why the agent is slower than the shell: every file waits the 0.2 s confirmation after its close "
        "event (watcher/settle.py DEFAULT_CONFIRM_SECONDS, scheduled in watcher/agent.py _on_event); the "
        "real work after it is a few ms. The shell uploads on the event alone, which SPEC §5 forbids "
        "('never to zero confirmation'): beating it needs a confirmation shorter than the shell's ~12 ms, "
        "i.e. effectively none. Target not reachable without changing the contract."
    ),
    "burst": (
        "why the burst is slower than a bare loop: the agent does per file what the bare loop does not "
        "(settle check, sniff, head hash for dedupe, change check after the upload, a sidecar written with "
        "fsync of the file and the folder, an error-record cleanup, a log line) and watchdog turns ~6 "
        "inotify events per file into Python objects (half of them caused by the agent's own sidecar "
        "temporary, which SPEC §6 puts in the same folder). Profiled with py-spy --gil, the agent holds "
        "the GIL about half the time; the rest is fsync and loopback waits, and the emulator and the agent "
        "share the 2 cores. Concurrency 2, 4 or 8 changes nothing. Already applied: proxies read once "
        "(trust_env off), a same-size file hashed in full only when its first 64 KiB match an earlier "
        "upload. Left: replacing requests by http.client in the upload path (~0.7 ms/file less, measured "
        "by the prototype) would go against the project's chosen base dependencies."
    ),
    "big": (
        "why the big file can be slower than curl: the agent must sha256 the bytes it sends (SPEC §6); "
        "large bodies are hashed on a helper thread one chunk behind the socket (watcher/client.py "
        "HashingReader), so hashing and sending overlap, but on 2 cores the emulator's receiving, the "
        "agent's sending and its hashing still compete for CPU, and runs swing between 0.6 and 1.0 x curl. "
        "Against the real API (~1 min per GB) the difference is moot."
    ),
    "rescan": (
        "why rescans cost: a periodic rescan lists every folder and stats every image (~10 us/file in "
        "watcher/scanning.py walk_candidates); files already known to be done are not passed to the "
        "scheduler, and vanished ones are reconciled per directory (watcher/pathindex.py). At 100,000 "
        "files and rescan_seconds 300 that still averages above 0.2 % of a core; idle between rescans the "
        "agent does not wake at all. An inotify overflow brings a rescan forward, so rescan_seconds can "
        "be raised for large inotify folders (it matters for polling ones)."
    ),
}


# ---------------------------------------------------------------------------------------------------
# The workloads


class Context:
    def __init__(self, work: Path, mode: str, agent_src: str | None = None) -> None:
        self.work = work
        self.mode = mode
        self.agent_src = agent_src
        self.sizes = SIZES[mode]
        self.emulator = EmulatorProcess(work)
        self.tools = {tool: shutil.which(tool) is not None for tool in ("inotifywait", "curl")}

    @property
    def quick(self) -> bool:
        return self.mode == "quick"

    def fresh_dir(self, name: str) -> Path:
        path = self.work / name
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def has(self, *tools: str) -> bool:
        return all(self.tools[t] for t in tools)


def one_at_a_time(folder: Path, watch: SidecarWatch, count: int, tag: str) -> list[float]:
    """Write `count` 1 MiB images one after the other; seconds from each writer's close to its sidecar."""
    latencies = []
    for i in range(count):
        data = png_bytes(f"{tag}-{i}", 1 << 20)
        path = folder / f"{tag}-{i:03d}.png"
        with open(path, "wb") as out:
            out.write(data)
        closed = time.monotonic()
        appeared = watch.wait([str(path)], timeout=30)[str(path)]
        latencies.append(appeared - closed)
        time.sleep(0.1)  # one at a time: the next file arrives once the previous one is done
    return latencies


def bench_latency(ctx: Context, out: Outcome) -> None:
    count = ctx.sizes["latency_files"]
    shell: list[float] = []
    if ctx.has("inotifywait", "curl"):
        folder = ctx.fresh_dir("latency-shell")
        with ShellHotFolder(ctx, "latency", [folder]), SidecarWatch([folder]) as watch:
            shell = one_at_a_time(folder, watch, count, "shell")
    folder = ctx.fresh_dir("latency-agent")
    with AgentProcess(ctx, "latency", [folder]).start(), SidecarWatch([folder]) as watch:
        agent = one_at_a_time(folder, watch, count, "agent")
    a50, a95 = percentile(agent, 50), percentile(agent, 95)
    label = f"{count} × 1 MiB, one at a time"
    if shell:
        s50, s95 = percentile(shell, 50), percentile(shell, 95)
        base = f"shell: p50 {fmt_s(s50)}, p95 {fmt_s(s95)}"
        out.rows.append(
            Row(label, "close → sidecar, p50", fmt_s(a50), base, f"{a50 / s50:.1f} × shell", "≤ 0.5 s",
                verdict(a50 <= 0.5))
        )  # fmt: skip
        out.rows.append(
            Row(label, "close → sidecar, p50 vs shell", fmt_s(a50), base, f"{a50 / s50:.1f} × shell",
                "< shell", verdict(a50 < s50))
        )  # fmt: skip
        out.rows.append(Row(label, "close → sidecar, p95", fmt_s(a95), base, f"{a95 / s95:.1f} × shell",
                            "", "n/a"))  # fmt: skip
    else:
        out.rows.append(Row(label, "close → sidecar, p50", fmt_s(a50), "shell: not run (no inotifywait/curl)",
                            "", "≤ 0.5 s", verdict(a50 <= 0.5)))  # fmt: skip
    out.notes.append(
        f"agent latencies (s): min {min(agent):.3f}, p50 {a50:.3f}, p95 {a95:.3f}, max {max(agent):.3f}; "
        "default settings (settle_seconds 2), so each file waits the agent's 0.2 s close-confirmation window "
        f"(README: 'a 0.2 s confirmation is enough'): p50 minus 0.2 s = {fmt_s(a50 - 0.2)} of real work."
    )
    if shell and percentile(agent, 50) >= percentile(shell, 50):
        out.notes.append(WHY_MISSED["latency-shell"])
    if shell:
        out.notes.append(
            f"shell latencies (s): min {min(shell):.3f}, p50 {percentile(shell, 50):.3f}, "
            f"max {max(shell):.3f} (curl starts on close_write, no confirmation at all)."
        )


def _stage_files(ctx: Context, name: str, count: int, size: int) -> tuple[Path, list[str]]:
    stage = ctx.fresh_dir(name)
    names = []
    for i in range(count):
        file_name = f"{name}-{i:05d}.png"
        (stage / file_name).write_bytes(png_bytes(f"{name}-{i}", size))
        names.append(file_name)
    return stage, names


def _move_all(names: list[str], src: Path, dst: Path) -> None:
    for file_name in names:
        os.rename(src / file_name, dst / file_name)


def _burst_into(ctx: Context, names: list[str], stage: Path, folder: Path) -> tuple[float, SidecarWatch]:
    """Rename every staged file into `folder` at once; seconds until the last sidecar appears."""
    watch = SidecarWatch([folder])
    started = time.monotonic()
    _move_all(names, stage, folder)
    times = watch.wait([str(folder / n) for n in names], timeout=max(300.0, len(names) * 0.5))
    return max(times.values()) - started, watch


def _return_files(names: list[str], folder: Path, stage: Path) -> None:
    _move_all(names, folder, stage)
    for entry in os.listdir(folder):
        os.unlink(folder / entry)


def bench_burst(ctx: Context, out: Outcome) -> None:
    count = ctx.sizes["burst_files"]
    stage, names = _stage_files(ctx, "burst", count, 256 * 1024)
    listing = ctx.work / "burst-list.txt"
    listing.write_text("".join(f"{stage / n}\n" for n in names))
    base_url = ctx.emulator.base_url

    session = run_client(ctx, "session-loop", [base_url, str(listing)])
    session_rates = [count / session["seconds"]]
    docs = run_client(ctx, "docs-recipe", [base_url, str(listing)])
    docs_rate = count / docs["seconds"]

    shell_rate = math.nan
    if ctx.has("inotifywait", "curl"):
        folder = ctx.fresh_dir("burst-shell")
        with ShellHotFolder(ctx, "burst", [folder]) as shell:
            seconds, watch = _burst_into(ctx, names, stage, folder)
            watch.close()
            if shell.failures():
                raise RuntimeError(f"the shell baseline reported {shell.failures()} failed uploads")
        shell_rate = count / seconds
        _return_files(names, folder, stage)

    folder = ctx.fresh_dir("burst-agent")
    with AgentProcess(ctx, "burst", [folder]).start() as agent:
        cpu0 = agent.cpu_seconds()
        seconds, watch = _burst_into(ctx, names, stage, folder)
        watch.close()
        agent_cpu = agent.cpu_seconds() - cpu0
        agent_hwm = agent.hwm_kb()
    agent_rate = count / seconds
    _return_files(names, folder, stage)

    session_rates.append(count / run_client(ctx, "session-loop", [base_url, str(listing)])["seconds"])
    session_rate = sum(session_rates) / len(session_rates)
    shutil.rmtree(stage)

    label = f"burst of {count} × 256 KiB"
    base = (
        f"session loop {session_rate:.0f}/s (runs: {', '.join(f'{r:.0f}' for r in session_rates)}); "
        f"docs recipe {docs_rate:.0f}/s; shell {shell_rate:.1f}/s"
    )
    out.rows.append(Row(label, "files/s to the last sidecar", f"{agent_rate:.0f}/s", base,
                        f"{agent_rate / session_rate:.2f} × session loop", "≥ 0.8 × session loop",
                        verdict(agent_rate >= 0.8 * session_rate)))  # fmt: skip
    if not math.isnan(shell_rate):
        out.rows.append(Row(label, "files/s to the last sidecar", f"{agent_rate:.0f}/s", base,
                            f"{agent_rate / shell_rate:.1f} × shell", "≥ 5 × shell",
                            verdict(agent_rate >= 5 * shell_rate)))  # fmt: skip
    out.notes.append(
        f"burst: the files are written to a staging folder first, then renamed into the watched folder in "
        f"one go (as rsync or a render farm's final move does); the clock runs from the first rename to the "
        f"last sidecar. The session loop and docs recipe read the same staged files. Agent CPU during the "
        f"burst: {agent_cpu:.2f} s ({agent_cpu / count * 1000:.2f} ms/file); the session loop process used "
        f"{session['cpu_seconds'] / count * 1000:.2f} ms/file, the docs recipe "
        f"{docs['cpu_seconds'] / count * 1000:.2f} ms/file (interpreter start included). Agent peak RSS "
        f"{fmt_mb(agent_hwm)}. Every file has the same size; the agent's dedupe compares the first "
        f"64 KiB before it would hash a file in full."
    )
    if agent_rate < 0.8 * session_rate or agent_rate < 5 * shell_rate:
        out.notes.append(WHY_MISSED["burst"])


def bench_big(ctx: Context, out: Outcome) -> None:
    size = ctx.sizes["big_bytes"]
    stage = ctx.fresh_dir("big-stage")
    big = stage / "big.png"
    free = shutil.disk_usage(ctx.work).free
    if free < size * 2:
        raise RuntimeError(f"not enough disk for the big file: {free} bytes free, need {2 * size}")
    written = time.monotonic()
    write_big_png(big, size)
    written = time.monotonic() - written
    mb = size / 1e6

    curl_runs = [run_curl_upload(ctx, big)] if ctx.has("curl") else []
    docs: dict[str, Any] | None = None
    if meminfo_kb("MemAvailable") * 1024 > size * 2 + (1 << 30):
        listing = ctx.work / "big-list.txt"
        listing.write_text(f"{big}\n")
        docs = run_client(ctx, "docs-recipe", [ctx.emulator.base_url, str(listing)])

    folder = ctx.fresh_dir("big-agent")
    with AgentProcess(ctx, "big", [folder]).start() as agent:
        hwm_ready = agent.hwm_kb()
        watch = SidecarWatch([folder])
        started = time.monotonic()
        os.rename(big, folder / big.name)
        peak = 0
        target = str(folder / big.name)
        while target not in watch.seen:
            peak = max(peak, agent.hwm_kb())
            with contextlib.suppress(TimeoutError):
                watch.wait([target], timeout=0.2)
        end_to_end = watch.seen[target] - started
        watch.close()
        peak = max(peak, agent.hwm_kb())
        found = re.search(r"big\.png: uploaded in ([0-9.]+) s", agent.log())
        upload_seconds = float(found.group(1)) if found else math.nan
    if ctx.has("curl"):
        curl_runs.append(run_curl_upload(ctx, folder / big.name))
    os.unlink(folder / big.name)

    label = f"one {size / 1e9:.2f} GB file"
    agent_rate = mb / upload_seconds
    e2e_rate = mb / end_to_end
    parts = []
    curl_rate = math.nan
    if curl_runs:
        curl_rate = sum(mb / r["seconds"] for r in curl_runs) / len(curl_runs)
        runs = ", ".join(f"{mb / r['seconds']:.0f}" for r in curl_runs)
        parts.append(f"curl -T {curl_rate:.0f} MB/s (runs: {runs})")
    if docs is not None:
        parts.append(f"docs recipe {mb / docs['seconds']:.0f} MB/s")
    base = "; ".join(parts) or "curl not available"
    ratio = f"{agent_rate / curl_rate:.2f} × curl" if curl_runs else ""
    out.rows.append(Row(label, "upload throughput (agent's own upload time)", f"{agent_rate:.0f} MB/s", base,
                        ratio, "≥ 0.9 × curl -T",
                        verdict(agent_rate >= 0.9 * curl_rate) if curl_runs else "n/a"))  # fmt: skip
    out.rows.append(Row(label, "throughput, rename → sidecar", f"{e2e_rate:.0f} MB/s", base,
                        f"{e2e_rate / curl_rate:.2f} × curl" if curl_runs else "", "", "n/a"))  # fmt: skip
    rss_base = [f"curl {fmt_mb(max(r['vmhwm_kb'] for r in curl_runs))}"] if curl_runs else []
    if docs is not None:
        rss_base.append(f"docs recipe {fmt_mb(docs['vmhwm_kb'])}")
    out.rows.append(Row(label, "peak RSS (VmHWM)", fmt_mb(peak), "; ".join(rss_base), "", "≤ 80 MB",
                        verdict(peak <= 80 * 1024)))  # fmt: skip
    out.notes.append(
        f"big file: {size} bytes (a random 1 MiB block repeated), written in {written:.1f} s and in the page "
        f"cache for every run. The agent's upload time ({upload_seconds:.2f} s) is the one it logs for the "
        f"file (open, stream with sha256, answer, change check); rename → sidecar ({end_to_end:.2f} s) adds "
        f"the 0.2 s close-confirmation and the sidecar's fsync. The agent's VmHWM was {fmt_mb(hwm_ready)} at "
        f"READY, before the file arrived."
    )
    if curl_runs and agent_rate < 0.9 * curl_rate:
        out.notes.append(WHY_MISSED["big"])
    if docs is None:
        out.notes.append("docs recipe skipped on the big file: not enough free memory to hold it")


def _make_uploaded_dataset(ctx: Context, folders: int, per_folder: int) -> list[Path]:
    """`folders` × `per_folder` tiny images, each with a sidecar in the agent's format (matching stat)."""
    paths = []
    n = 0
    for f in range(folders):
        folder = ctx.fresh_dir(f"uploaded-{f:02d}")
        paths.append(folder)
        for i in range(per_folder):
            n += 1
            name = f"img-{i:05d}.png"
            data = png_bytes(f"ds-{f}-{i}", PNG_OVERHEAD + 32)
            image = folder / name
            image.write_bytes(data)
            st = os.stat(image)
            sidecar = {
                "fileID": f"user:1-minimax:{ACCOUNT}-file:{390_000_000_000_000 + n}",
                "ossPath": f"https://oss.example.invalid/{390_000_000_000_000 + n}.png",
                "account": ACCOUNT,
                "file": name,
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
                "sha256": hashlib.sha256(data).hexdigest(),
                "contentType": "image/png",
                "uploadedAt": "2026-01-01T00:00:00Z",
            }
            (folder / (name + ".json")).write_text(json.dumps(sidecar, indent=2) + "\n")
    return paths


def bench_startup_and_idle(ctx: Context, out: Outcome) -> None:
    folders, per_folder = ctx.sizes["dataset_folders"], ctx.sizes["dataset_per_folder"]
    total = folders * per_folder
    made = time.monotonic()
    dataset = _make_uploaded_dataset(ctx, folders, per_folder)
    made = time.monotonic() - made

    empties = [ctx.fresh_dir(f"empty-{i:02d}") for i in range(folders)]
    with AgentProcess(ctx, "empty", empties).start() as empty_agent:
        empty_ready, empty_hwm = empty_agent.ready_seconds, empty_agent.hwm_kb()

    walk = run_client(ctx, "done-walk", [str(p) for p in dataset])
    if walk["count"] != total or walk["failed"]:
        raise RuntimeError(f"dataset check failed: {walk}")

    idle_window = ctx.sizes["idle_seconds"]
    # A second agent on the same folders with a short rescan_seconds prices the periodic full rescan,
    # which the default (300 s) keeps out of the idle window; both idle side by side.
    rescan_every = idle_window / 4
    with AgentProcess(ctx, "uploaded", dataset).start() as agent:
        ready, hwm_ready = agent.ready_seconds, agent.hwm_kb()
        shell = ShellHotFolder(ctx, "idle", dataset) if ctx.has("inotifywait", "curl") else None
        rescanner = AgentProcess(ctx, "rescanning", dataset, rescan_seconds=rescan_every).start()
        try:
            time.sleep(1.0 if ctx.quick else 5.0)  # let start-up work (status line, GC) finish
            a_cpu0, a_ns0 = agent.cpu_seconds(), agent.runtime_ns()
            r_ns0 = rescanner.runtime_ns()
            s_cpu0 = shell.cpu_seconds() if shell else 0.0
            started = time.monotonic()
            time.sleep(idle_window)
            elapsed = time.monotonic() - started
            a_cpu = agent.cpu_seconds() - a_cpu0
            a_ns = agent.runtime_ns() - a_ns0
            r_ns = rescanner.runtime_ns() - r_ns0
            rescans = math.floor((time.monotonic() - rescanner.started_at) / rescan_every) - math.floor(
                (started - rescanner.started_at) / rescan_every
            )
            s_cpu = shell.cpu_seconds() - s_cpu0 if shell else math.nan
        finally:
            rescanner.stop()
            if shell is not None:
                shell.stop()
        hwm_end = agent.hwm_kb()
        threads = len(os.listdir(f"/proc/{agent.pid}/task"))
        polling = agent.log().count("polling")
        status = agent.status()
    if f"{total} files already uploaded" not in agent.log() and f"{total} uploaded" not in status:
        found = re.search(r"ready: .*", agent.log())
        out.notes.append(f"start-up log line: {found.group(0) if found else 'missing'}")

    label = f"{folders} folders × {per_folder:,} uploaded, idle {idle_window:.0f} s"
    a_pct = a_cpu / elapsed * 100
    a_pct_ns = a_ns / 1e9 / elapsed * 100
    base = f"shell (inotifywait + bash) {s_cpu / elapsed * 100:.3f} %" if shell else "shell not run"
    out.rows.append(Row(label, "agent CPU, % of one core", f"{a_pct:.3f} % ({a_pct_ns:.3f} % by schedstat)",
                        base, "", "≤ 0.2 %", verdict(a_pct <= 0.2)))  # fmt: skip
    per_rescan = (r_ns - a_ns) / 1e9 / max(1, rescans)
    out.rows.append(Row(label, "CPU of one periodic rescan; averaged over rescan_seconds 300",
                        f"{per_rescan:.2f} s; {per_rescan / 300 * 100:.3f} %", "", "",
                        "(the idle target, over a long run)", verdict(a_pct + per_rescan / 3 <= 0.2)))  # fmt: skip
    label = f"start with {total:,} uploaded images"
    base = (
        f"agent on {folders} empty folders {fmt_s(empty_ready)}; bare done-check walk "
        f"(list, stat, read+parse sidecar) {fmt_s(walk['seconds'])}"
    )
    out.rows.append(Row(label, "time to READY=1", fmt_s(ready), base,
                        f"{ready / max(walk['seconds'], 1e-3):.1f} × walk", "≤ 5 s",
                        verdict(ready <= 5.0)))  # fmt: skip
    base = f"agent on empty folders {fmt_mb(empty_hwm)}; done-check walk {fmt_mb(walk['vmhwm_kb'])}"
    peak = max(hwm_ready, hwm_end)
    out.rows.append(Row(label, "peak RSS (VmHWM)", fmt_mb(peak), base,
                        f"+{fmt_mb(peak - empty_hwm)} over empty", "≤ 150 MB",
                        verdict(peak <= 150 * 1024)))  # fmt: skip
    out.notes.append(
        f"start-up/idle: dataset of {total:,} images + {total:,} sidecars created in {made:.1f} s (warm page "
        f"cache: the agent and the walk read files the suite just wrote). Idle window {elapsed:.1f} s after "
        f"READY; agent CPU {a_cpu:.2f} s by /proc stat ticks (10 ms resolution), {a_ns / 1e9:.3f} s by "
        f"schedstat; {threads} threads; 'polling' mentioned {polling} time(s) in its log. The default "
        f"rescan_seconds (300) is longer than the window, so the periodic full rescan is not in that figure; "
        f"a second agent on the same folders with rescan_seconds {rescan_every:g} idled alongside and did "
        f"{rescans} rescans in the window, using {r_ns / 1e9:.2f} s of CPU: that prices one rescan."
    )
    if a_pct + per_rescan / 3 > 0.2:
        out.notes.append(WHY_MISSED["rescan"])
    for path in dataset + empties:
        shutil.rmtree(path)


def bench_backlog(ctx: Context, out: Outcome) -> None:
    steps, per_step = ctx.sizes["backlog_steps"], ctx.sizes["backlog_per_step"]
    total = steps * per_step
    stage, names = _stage_files(ctx, "backlog", total, 4096)
    folder = ctx.fresh_dir("backlog-agent")
    ctx.emulator.command("clear")
    ctx.emulator.command("fault 503")
    samples: list[tuple[str, int, int, int]] = []  # (label, tracked, VmRSS, VmHWM)
    try:
        with AgentProcess(ctx, "backlog", [folder]).start() as agent:
            started = time.monotonic()
            samples.append(("ready", 0, agent.rss_kb(), agent.hwm_kb()))
            for step in range(steps):
                batch = names[step * per_step : (step + 1) * per_step]
                _move_all(batch, stage, folder)
                want = (step + 1) * per_step
                deadline = time.monotonic() + 180
                while agent.tracked() < want:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"the agent tracks {agent.tracked()} files, expected {want}")
                    time.sleep(0.2)
                time.sleep(1.0)
                samples.append((f"{want:,} pending", agent.tracked(), agent.rss_kb(), agent.hwm_kb()))
            hold = ctx.sizes["backlog_hold"]
            time.sleep(hold)
            samples.append(
                (f"{total:,} pending, +{hold:.0f} s", agent.tracked(), agent.rss_kb(), agent.hwm_kb())
            )
            cpu = agent.cpu_seconds()
            phase = time.monotonic() - started
            stats = ctx.emulator.command("stats")
            sidecars = [n for n in os.listdir(folder) if n.endswith(".json")]
    finally:
        ctx.emulator.command("clear")
    shutil.rmtree(stage)
    shutil.rmtree(folder)
    if sidecars:
        raise RuntimeError(f"{len(sidecars)} sidecars were written while the API answered 503")

    first, last = samples[1], samples[-1]
    growth_kb = last[3] - first[3]
    per_file = growth_kb * 1024 / max(1, total - per_step)
    peak = max(s[3] for s in samples)
    flat = per_file <= 2048
    label = f"{total:,} files pending, API answers 503"
    curve = ", ".join(f"{s[0]}: {fmt_mb(s[2])}" for s in samples)
    out.rows.append(Row(label, "peak RSS (VmHWM)", fmt_mb(peak), f"ready: {fmt_mb(samples[0][3])}",
                        f"+{fmt_mb(peak - samples[0][3])} over ready", "≤ 150 MB",
                        verdict(peak <= 150 * 1024)))  # fmt: skip
    out.rows.append(Row(label, "VmHWM growth per pending file", f"{per_file:.0f} B/file",
                        f"from {first[0]} to {last[0]}", "", "flat (≤ 2 KiB/file: bookkeeping, no bytes)",
                        verdict(flat)))  # fmt: skip
    out.notes.append(
        f"backlog: VmRSS as the backlog grows: {curve}. Over the {phase:.0f} s phase the agent sent "
        f"{stats['requests']:,} upload attempts ({stats['requests'] / phase:.0f}/s; the emulator answered "
        f"{dict(stats['by_status'])}) and used {cpu:.1f} s of CPU: after 3 temporary failures in a row "
        f"the account's backlog is held and one probe upload at a time goes out on the retry schedule "
        f"(watcher/accounts.py), instead of every file retrying on its own clock."
    )


WORKLOADS: dict[str, Callable[[Context, Outcome], None]] = {
    "latency": bench_latency,
    "burst": bench_burst,
    "big": bench_big,
    "startup": bench_startup_and_idle,
    "backlog": bench_backlog,
}


# ---------------------------------------------------------------------------------------------------
# Report


def machine_lines() -> list[str]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "watcher"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit, dirty = "unknown", ""
    return [
        f"- CPUs: {os.cpu_count()} ({model or 'unknown model'}); memory: "
        f"{meminfo_kb('MemTotal') / 1024 / 1024:.1f} GiB; kernel {platform.release()}; "
        f"Python {platform.python_version()}",
        f"- repository at commit {commit}{' with local changes in watcher/' if dirty else ''}",
    ]


def _agent_src_line(agent_src: str) -> str:
    found = re.search(r"agent-src-([0-9a-f]+)$", agent_src)
    if found:
        return f"- agent run as committed at {found.group(1)} (--agent-rev), not from the working tree"
    return f"- **agent run from {agent_src}** (--agent-src), not from the repository"


def render(
    outcomes: list[Outcome], mode: str, started: datetime, loads: tuple[str, str], agent_src: str | None
) -> str:
    lines = [
        "# minimax-watcher benchmark results",
        "",
        f"Written by `bench/run.py{' --quick' if mode == 'quick' else ''}` on "
        f"{started.strftime('%Y-%m-%d %H:%M UTC')}. Every figure is measured in this same run, side by side "
        "with its baselines, against one emulator process on loopback; compare ratios, not absolute "
        "figures: the machine is shared and noisy.",
        "",
        *machine_lines(),
        f"- load average at start {loads[0]}, at end {loads[1]}",
        *([_agent_src_line(agent_src)] if agent_src else []),
        "",
    ]
    if mode == "quick":
        lines += ["**Quick mode**: every workload is scaled down; verdicts are not meaningful.", ""]
    lines += [
        "| workload | figure | agent | baselines (same run) | ratio | target | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for outcome in outcomes:
        for r in outcome.rows:
            lines.append(
                f"| {r.workload} | {r.figure} | {r.agent} | {r.baselines} | {r.ratio} | {r.target} | "
                f"{'**MISSED**' if r.verdict == 'MISSED' else r.verdict} |"
            )
        if outcome.error:
            lines.append(f"| {outcome.name} | (failed to run) | | | | | error |")
    lines += ["", "## Notes", ""]
    for outcome in outcomes:
        lines.append(f"### {outcome.name} ({outcome.seconds:.0f} s, load average after: {outcome.load})")
        lines.append("")
        for note in outcome.notes:
            lines.append(f"- {note}")
        if outcome.error:
            lines += ["", "```", outcome.error.rstrip(), "```"]
        lines.append("")
    return "\n".join(lines)


def print_table(outcomes: list[Outcome]) -> None:
    rows = [("workload", "figure", "agent", "ratio", "target", "verdict")]
    for outcome in outcomes:
        for r in outcome.rows:
            rows.append((r.workload, r.figure, r.agent, r.ratio, r.target, r.verdict))
        if outcome.error:
            rows.append((outcome.name, "FAILED TO RUN", "", "", "", "error"))
    widths = [min(44, max(len(row[i]) for row in rows)) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell[: widths[i]].ljust(widths[i]) for i, cell in enumerate(row)))


def export_revision(rev: str, dest: Path) -> str:
    """`git archive REV watcher` into `dest`; returns `dest` for PYTHONPATH, labelled with the commit."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", rev], capture_output=True, text=True, check=True
    ).stdout.strip()
    dest = dest.with_name(f"{dest.name}-{commit}")
    dest.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "watcher"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return str(dest)


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="mmw-bench-"))
    try:
        yield base
    finally:
        if keep:
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="scaled-down workloads (smoke test)")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(WORKLOADS)}")
    parser.add_argument(
        "--results", type=Path, default=BENCH / "RESULTS.md", help="where to write the report"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs) for inspection")
    parser.add_argument(
        "--agent-src",
        help="run the agent from this folder (one holding a `watcher` package, e.g. a scratch copy with a "
        "change to try) instead of the installed one; the report says so",
    )
    parser.add_argument(
        "--agent-rev",
        help="run the agent as committed at this git revision (e.g. HEAD), exported to the work folder, "
        "instead of the working tree others may be editing",
    )
    args = parser.parse_args(argv)
    names = list(WORKLOADS) if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s): {', '.join(unknown)}")
    mode = "quick" if args.quick else "full"
    started = datetime.now(UTC)
    load_start = loadavg()
    outcomes: list[Outcome] = []
    with workdir(args.keep) as work:
        agent_src = str(Path(args.agent_src).resolve()) if args.agent_src else None
        if args.agent_rev:
            agent_src = export_revision(args.agent_rev, work / "agent-src")
        ctx = Context(work, mode, agent_src)
        missing = [t for t, ok in ctx.tools.items() if not ok]
        if missing:
            print(f"warning: {', '.join(missing)} not found; the baselines that need them are skipped",
                  file=sys.stderr)  # fmt: skip
        try:
            for name in names:
                outcome = Outcome(name)
                print(f"== {name} ...", file=sys.stderr, flush=True)
                began = time.monotonic()
                try:
                    WORKLOADS[name](ctx, outcome)
                except Exception:
                    outcome.error = traceback.format_exc()
                    print(outcome.error, file=sys.stderr)
                outcome.seconds = time.monotonic() - began
                outcome.load = loadavg()
                outcomes.append(outcome)
                print(f"   {name} done in {outcome.seconds:.0f} s", file=sys.stderr, flush=True)
        finally:
            ctx.emulator.stop()
    report = render(outcomes, mode, started, (load_start, loadavg()), agent_src)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(report + "\n")
    print_table(outcomes)
    print(f"\nwritten to {args.results}")
    return 1 if any(o.error for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
