"""`--dataset trace:PATH`: a JSONL trace of requests, replayed on its own schedule with synthetic prompts.

One JSON object per line, in the field names of AIPerf's `mooncake_trace` (Mooncake's FAST'25 traces):
`timestamp` in milliseconds, `input_length` and `output_length` in tokens. A trace written in seconds names
its times `timestamp_s` instead (GuideLLM's replay reads a `timestamp` in seconds: rename it, or it plays
1,000 times faster); one unit per file. `hash_ids`, `text_input` and any other field are ignored: every
prompt is a seeded random synthetic prompt of exactly `input_length` tokens (token ids where the endpoint
takes them, like `--dataset synthetic`), so no two requests share a prefix. `max_tokens` is `output_length`.

Requests go out in time order, the earliest at t = 0 and each later one at its distance from it, each once.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from paretoserve.bench.workload import RequestSpec, WorkloadError, synthetic_prompt
from paretoserve.limits import IntRange

TOKENS = IntRange(1, 1 << 20)  # input_length and output_length, as --input-tokens allows
UNITS = {"timestamp": 1e-3, "timestamp_s": 1.0}  # field -> seconds per unit


@dataclass(frozen=True, slots=True)
class TraceRow:
    """One request of a trace: when it goes out and its token counts."""

    at_s: float  # seconds after the trace's earliest request
    input_tokens: int
    output_tokens: int
    line: int  # its line in the file, for messages


def read_trace(path: Path, flag: str = "--dataset trace:") -> list[TraceRow]:
    """The trace's requests in time order (a stable sort: equal times keep the file's order), times relative to
    the earliest. A line that cannot be read is one WorkloadError naming `flag`, the file and the line."""
    name = f"{flag}{path}"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise WorkloadError(f"{name}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise WorkloadError(f"{name}: not UTF-8 text ({exc.reason})") from exc
    rows: list[tuple[float, int, int, int]] = []
    unit_field: tuple[str, int] | None = None  # the time field of the first line, and that line
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        field, t, n_in, n_out = _parse_line(line, f"{name}: line {number}")
        if unit_field is None:
            unit_field = (field, number)
        elif field != unit_field[0]:
            raise WorkloadError(f"{name}: line {number} gives '{field}' but line {unit_field[1]} gave "
                                f"'{unit_field[0]}': one time unit per trace")
        rows.append((t * UNITS[field], n_in, n_out, number))
    if not rows:
        raise WorkloadError(f"{name}: no requests (one JSON object per line: timestamp, input_length, output_length)")
    rows.sort(key=lambda row: row[0])
    start = rows[0][0]
    return [TraceRow(t - start, n_in, n_out, number) for t, n_in, n_out, number in rows]


def load_trace(path: Path, seed: int, as_ids: bool) -> list[RequestSpec]:
    """The trace's requests to send: a synthetic prompt of each one's input length (seeded), its output length
    as max_tokens, its time as the planned send time."""
    rng = random.Random(seed)
    return [RequestSpec(synthetic_prompt(rng, row.input_tokens, as_ids), row.input_tokens, row.output_tokens,
                        at_s=row.at_s) for row in read_trace(path)]


def trace_digest(path: Path) -> str:
    """The first 16 hex digits of the file's SHA-256: sweep.json keeps it, so --resume notices an edited trace."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError as exc:
        raise WorkloadError(f"--dataset trace:{path}: {exc.strerror or exc}") from exc


def _parse_line(line: str, where: str) -> tuple[str, float, int, int]:
    """(time field, time in its unit, input_length, output_length) of one line; `where` starts each message."""
    try:
        row = json.loads(line)
    except ValueError as exc:
        raise WorkloadError(f"{where} is not JSON ({exc})") from exc
    if not isinstance(row, dict):
        raise WorkloadError(f"{where} is not a JSON object")
    fields = [f for f in UNITS if f in row]
    if len(fields) != 1:
        got = "both 'timestamp' and 'timestamp_s'" if fields else "no 'timestamp'"
        raise WorkloadError(f"{where} has {got}: give 'timestamp' (milliseconds) or 'timestamp_s' (seconds)")
    t = row[fields[0]]
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
        raise WorkloadError(f"{where}: '{fields[0]}' must be a number; got {t!r}")
    return fields[0], float(t), _tokens(row, "input_length", where), _tokens(row, "output_length", where)


def _tokens(row: dict, key: str, where: str) -> int:
    value = row.get(key)
    if not isinstance(value, int) or not TOKENS.contains(value):
        hint = " (text_input is not replayed: use --dataset jsonl:PATH for prompts of your own)" \
            if key == "input_length" and "text_input" in row and value is None else ""
        shown = "none" if key not in row else repr(value)
        raise WorkloadError(f"{where}: '{key}' must be an integer in {TOKENS}; got {shown}{hint}")
    return value


def write_trace(rows: Iterable[TraceRow], path: Path, time_scale: float = 1.0) -> Path:
    """Write `rows` as a trace this module reads (times in seconds, `timestamp_s`, each multiplied by
    `time_scale`), its folder created; returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (json.dumps({"timestamp_s": row.at_s * time_scale, "input_length": row.input_tokens,
                         "output_length": row.output_tokens}) for row in rows)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def mean_rate(rows: list[TraceRow]) -> float | None:
    """A trace's mean request rate in req/s: its requests after the first over its span; None with fewer than two
    requests or no span."""
    span = rows[-1].at_s if rows else 0.0
    return (len(rows) - 1) / span if len(rows) >= 2 and span > 0 else None
