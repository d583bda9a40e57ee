"""cProfile output as the text the next optimisation starts from: a few counts per unit of work (SQLite
commits and statements per press, the routing queries), then the top functions by cumulative and
by own time. Paths are shortened to the repository and to site-packages so the lines stay readable."""

from __future__ import annotations

import io
import pstats
import site
import sys
from collections.abc import Iterable, Sequence
from cProfile import Profile
from pathlib import Path

from .rig import REPO

__all__ = ["Profile", "callees", "calls_of", "counts", "load", "part", "stats_of", "write_summary"]

# (label, file suffix, function name): counted per unit of work in the summary's head.
WATCHED: tuple[tuple[str, str, str], ...] = (
    ("Gateway.handle (messages handled)", "gateway/service.py", "handle"),
    ("Gateway.on_press", "gateway/service.py", "on_press"),
    ("Gateway._escalate (routing)", "gateway/service.py", "_escalate"),
    ("Gateway.tick", "gateway/service.py", "tick"),
    ("Gateway.supervise", "gateway/service.py", "supervise"),
    ("Store._commit (transactions, reads too)", "gateway/store.py", "_commit"),
    ("_Tx.run (SQL statements)", "gateway/store.py", "run"),
    ("Store.busy (who is busy: GROUP BY)", "gateway/store.py", "busy"),
    ("Store.save_replay", "gateway/store.py", "save_replay"),
    ("Store.recent_incidents (zone rule)", "gateway/store.py", "recent_incidents"),
    ("rbproto.decode (verify HMAC)", "rbproto/__init__.py", "decode"),
    ("rbproto.encode (sign)", "rbproto/__init__.py", "encode"),
    ("MqttIO.publish", "gateway/mqtt_io.py", "publish"),
    ("logging: Logger._log", "logging/__init__.py", "_log"),
)


def load(paths: Iterable[Path]) -> pstats.Stats | None:
    """One Stats from several pstats files (those that exist and hold anything)."""
    stats: pstats.Stats | None = None
    for p in paths:
        if not p.exists() or p.stat().st_size == 0:
            continue
        if stats is None:
            stats = pstats.Stats(str(p))
        else:
            stats.add(str(p))
    return stats


def stats_of(prof: Profile) -> pstats.Stats:
    return pstats.Stats(prof)


def _shorten(text: str) -> str:
    prefixes = sorted({*site.getsitepackages(), str(Path(sys.prefix) / "lib"), str(REPO)}, key=len, reverse=True)
    for prefix in prefixes:
        text = text.replace(prefix + "/", "")
    return text.replace(sys.base_prefix + "/lib/", "")


def counts(stats: pstats.Stats, per: int | None, unit: str) -> list[str]:
    """The watched functions: calls, calls per unit, cumulative seconds, ms per unit."""
    table: dict[str, tuple[int, float]] = {}
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, object]] = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, name), (_cc, nc, _tt, ct, _callers) in raw.items():
        for label, suffix, fn in WATCHED:
            if name == fn and filename.endswith(suffix):
                calls, cum = table.get(label, (0, 0.0))
                table[label] = (calls + nc, cum + ct)
    lines = [f"{'function':<42}{'calls':>9}{'per ' + unit:>18}{'cum s':>9}{'ms per ' + unit:>21}"]
    for label, _suffix, _fn in WATCHED:
        if label not in table:
            continue
        calls, cum = table[label]
        each = f"{calls / per:.2f}" if per else "-"
        ms = f"{1000 * cum / per:.3f}" if per else "-"
        lines.append(f"{label:<42}{calls:>9}{each:>18}{cum:>9.3f}{ms:>21}")
    return lines


def calls_of(stats: pstats.Stats, suffix: str, fn: str) -> int:
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, object]] = stats.stats  # type: ignore[attr-defined]
    return sum(v[1] for (f, _l, n), v in raw.items() if n == fn and f.endswith(suffix))


def _top(stats: pstats.Stats, order: str, top: int) -> str:
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats(order).print_stats(top)
    # pstats' own header names the temporary file it was loaded from: drop everything before the table.
    text = out.getvalue()
    return _shorten(text[text.find("   Ordered by"):] if "   Ordered by" in text else text)


def callees(stats: pstats.Stats, pattern: str) -> str:
    """What the functions matching `pattern` ("file:line(name)") spent their time in, one level down."""
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("cumulative").print_callees(pattern)
    text = out.getvalue()
    return _shorten(text[text.find("Function "):] if "Function " in text else text)


def part(title: str, stats: pstats.Stats, per: int | None, unit: str, top: int = 35) -> list[str]:
    """One profiled thread: the watched counts per unit of work, then the top functions both ways."""
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    return [title, "-" * len(title), f"{total:.2f} s of own time recorded in all.", "",
            f"Per {unit} (cProfile's own overhead inflates times ~1.5-2x; the proportions hold):", "",
            *counts(stats, per, unit), "", f"Top {top} by cumulative time:", _top(stats, "cumulative", top),
            "Top 20 by own time:", _top(stats, "tottime", 20)]


def write_summary(path: Path, title: str, head: Sequence[str], parts: Sequence[Sequence[str]]) -> None:
    """The summary file: what was profiled, then one part per profiled thread."""
    lines = [title, "=" * len(title), *head, ""]
    for p in parts:
        lines += [*p, ""]
    path.write_text("\n".join(lines))
