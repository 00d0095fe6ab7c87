"""Shared bits of the benchmark scripts: machine description and Markdown tables."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_name() -> str:
    """The processor's model name (from /proc/cpuinfo on Linux). Torch-free, so the
    daemon benchmark can use it too."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine() -> str:
    """One line naming the machine, so tables from different machines are not compared."""
    cpu = cpu_name()
    import torch

    return f"{cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, Python {platform.python_version()}"


def table(headers: list[str], rows: list[list]) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4f}"
        return "n/a" if v is None else str(v)

    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def header(title: str) -> str:
    """Title, the exact command, the date and the machine."""
    cmd = "python3 " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"# {title}\n\nCommand: `{cmd}`  \nDate: {now}  \nMachine: {machine()}\n"
