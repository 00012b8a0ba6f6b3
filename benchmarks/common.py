"""What the benchmarks share: the machine's description, peak memory, running a measurement in a fresh process.

Each measurement that reports peak memory runs in its own process (a child of the benchmark script), so that
one size's peak is not hidden by another's and a run that is too slow can be stopped with a time limit.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Keep every tool offline and quiet, as the tests do.
for key, value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TQDM_DISABLE": "1",
    "MPLBACKEND": "Agg",
}.items():
    os.environ.setdefault(key, value)


def machine() -> dict[str, Any]:
    """Cores, memory, CPU model, Python and the date: the line a figure needs to be compared with another."""
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(memory_gb, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "load_1min": round(load, 2),
    }


def print_machine() -> None:
    m = machine()
    print(f"# machine: {m['cores']} cores ({m['cpu']}), {m['memory_gb']} GB; Python {m['python']}; {m['date']}; "
          f"load average {m['load_1min']}")  # fmt: skip


def print_command() -> None:
    """The command line that printed these figures, as a comment line."""
    print(f"# python benchmarks/{Path(sys.argv[0]).name} {' '.join(sys.argv[1:])}".rstrip())


def resident_gb() -> float:
    """This process's resident memory now (Linux: /proc), not its peak."""
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 2**20
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_rss_gb() -> float:
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def in_child(script: Path, args: list[str], timeout: float | None) -> dict[str, Any] | None:
    """Run `python script args...` in a fresh process; it prints one JSON line last. None if it ran past
    `timeout` seconds (the child is killed)."""
    try:
        done = subprocess.run(
            [sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt_seconds(value: float | None) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"
