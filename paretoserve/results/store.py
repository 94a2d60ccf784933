"""A sweep directory: sweep.json (spec and environment) and points.jsonl (one line per finished point)."""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

from paretoserve.limits import UserError

# The flag of a sweep.json setting is its key with dashes (`duration_s` -> --duration), except these.
FLAG_NAMES = {"threads": "--threads-per-replica"}
SPEC_FILE = "sweep.json"  # {"spec": ..., "environment": ...}, written once
POINTS_FILE = "points.jsonl"  # one record per point, appended as each ends
LOGS_DIR = "logs"  # one engine log per point
TOKEN_RANGE = re.compile(r"\{'low': (\d+), 'high': (\d+)\}")
CAPACITY_KIND = "capacity"  # a record's `kind`: one run of `paretoserve capacity` (results/rate_run.py)


class StoreError(UserError):
    """The directory holds another sweep, or a file in it cannot be read."""


class NoFinishedPoint(StoreError):
    """The sweep directory holds no point that finished ok (yet)."""


def is_finished(record: dict) -> bool:
    """A batch point that ran to the end: status ok, with the batch cap it was started with (never a capacity
    run, whatever its config holds)."""
    return record.get("status") == "ok" and not is_capacity(record) and isinstance(record.get("config"), dict) \
        and bool(record["config"].get("max_batch"))


def is_capacity(record: dict) -> bool:
    """A run of `paretoserve capacity` (one request rate, or its closed-loop first guess), not a batch point."""
    return record.get("kind") == CAPACITY_KIND


class SweepStore:
    """Reads and appends a sweep directory; a crash loses at most the point being written."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.spec_path = self.dir / SPEC_FILE
        self.points_path = self.dir / POINTS_FILE
        self.logs_dir = self.dir / LOGS_DIR
        self._records: dict[str, dict] | None = None  # points.jsonl as read once, then kept up to date by append
        self._stored: dict | None = None  # sweep.json as read or written once

    def open(self, spec: dict, environment: dict, resume: bool,
             flag_names: dict[str, str] | None = None) -> set[str]:
        """Create the directory or take up an existing one; returns the keys of finished points.

        `flag_names` names the flag of a setting whose key does not say it, for the resume-mismatch error."""
        spec = json.loads(json.dumps(spec))  # compare as stored: tuples come back as lists
        if self.spec_path.exists():
            if not resume:
                raise StoreError(f"{self.dir} already holds a sweep; pass --resume to continue it, "
                                 "or choose another --out")
            changed = _differences(self.read_spec()["spec"], spec, {**FLAG_NAMES, **(flag_names or {})})
            if changed:
                raise StoreError(f"--resume: the sweep in {self.dir} was started with other settings: "
                                 f"{'; '.join(changed)}; rerun with the same flags or another --out")
            self._drop_partial_line()
        else:
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = self.spec_path.with_suffix(".tmp")
            self._stored = {"spec": spec, "environment": json.loads(json.dumps(environment))}
            tmp.write_text(json.dumps(self._stored, indent=2))
            os.replace(tmp, self.spec_path)
        self.logs_dir.mkdir(exist_ok=True)
        return set(self.finished())

    def finished(self) -> dict[str, dict]:
        """The records of the points that finished ok, by key (what a resumed sweep does not run again)."""
        return {r["key"]: r for r in self.records() if is_finished(r)}

    def capacity_runs(self) -> list[dict]:
        """The capacity runs that finished ok, in the order they were first recorded."""
        return [r for r in self.records() if is_capacity(r) and r.get("status") == "ok"]

    def finished_capacity(self) -> dict[str, dict]:
        """The capacity runs that finished ok, by key (what a resumed `capacity` does not run again)."""
        return {r["key"]: r for r in self.capacity_runs()}

    def read_finished(self) -> tuple[dict, list[dict], list[dict]]:
        """For readers of a finished sweep: (sweep.json, ok batch points, failed batch points; capacity runs are
        neither); StoreError naming DIR when the directory is missing, is not a sweep, or has no finished
        batch point."""
        if not self.dir.is_dir():
            raise StoreError(f"DIR: no such sweep directory: {self.dir}")
        if not self.spec_path.exists():
            raise StoreError(f"DIR: {self.dir} holds no {SPEC_FILE}; give a directory made by `paretoserve sweep` "
                             "or `paretoserve import vllm`")
        try:
            stored, records = self.read_spec(), self.records()
        except StoreError as exc:
            raise StoreError(f"DIR: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"DIR: cannot read {self.points_path}: {exc.strerror or exc}") from exc
        ok = [r for r in records if is_finished(r)]
        capacity = sum(1 for r in records if is_capacity(r))
        if not ok and capacity:
            raise NoFinishedPoint(f"DIR: {self.dir} holds {capacity} capacity runs (`paretoserve capacity`) and no "
                                  "batch point; advise and report read a sweep's batch points")
        if not ok:
            raise NoFinishedPoint(f"DIR: {self.dir} has no finished point yet ({len(records)} recorded, none ok); "
                                  "run or resume the sweep first")
        return stored, ok, [r for r in records if not is_finished(r) and not is_capacity(r)]

    def read_spec(self) -> dict:
        """sweep.json, read once per store."""
        if self._stored is None:
            try:
                self._stored = json.loads(self.spec_path.read_text())
            except (OSError, ValueError) as exc:
                raise StoreError(f"cannot read {self.spec_path}: {exc}") from exc
        return self._stored

    def append(self, record: dict) -> None:
        """Add one finished point, flushed to disk before returning."""
        with self.points_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if self._records is not None:
            self._records[record["key"]] = record

    def records(self) -> list[dict]:
        """Every recorded point; a later record of the same key replaces an earlier (failed) one. points.jsonl is
        read once per store; what this store appends since is added as it is written."""
        if self._records is None:
            self._records = self._read_records()
        return list(self._records.values())

    def _read_records(self) -> dict[str, dict]:
        if not self.points_path.exists():
            return {}
        by_key: dict[str, dict] = {}
        for line in self.points_path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash
            by_key[record["key"]] = record
        return by_key

    def export_csv(self, path: str | Path) -> Path:
        """One row per point: its config columns, status, then every scalar summary field."""
        rows = []
        for record in self.records():
            row = {f"config.{k}": v for k, v in record.get("config", {}).items()}
            row.update({k: v for k, v in record.items() if k != "config" and not isinstance(v, (dict, list))})
            rows.append(row)
        columns = list(dict.fromkeys(c for row in rows for c in row))
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        return Path(path)

    def _drop_partial_line(self) -> None:
        """Cut a last line left unfinished by a crash, so the next append starts on a fresh line."""
        if not self.points_path.exists():
            return
        data = self.points_path.read_bytes()
        if data and not data.endswith(b"\n"):
            with self.points_path.open("r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)


def _differences(old: dict, new: dict, flag_names: dict[str, str]) -> list[str]:
    """'--flag was X, now Y' for each setting that differs, nested settings (workload, search) included."""
    lines = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if isinstance(before, dict) and isinstance(after, dict):
            lines += _differences(before, after, flag_names)
        elif before != after and not (_unset(before) and _unset(after)):  # a setting added since: unset = absent
            flag = flag_names.get(key, "--" + key.removesuffix("_s").replace("_", "-"))
            lines.append(f"{flag} was {_shown(before)}, now {_shown(after)}")
    return lines


def _unset(value: object) -> bool:
    return value in (None, "None")  # the workload keeps its values as str()


def _shown(value: object) -> str:
    """A setting as it is typed on the command line: lists comma-separated, token ranges as N or LO:HI."""
    if _unset(value):
        return "unset"
    if isinstance(value, list):
        return ",".join(map(_shown, value))
    tokens = TOKEN_RANGE.fullmatch(str(value))  # a token range is kept as the str() of its dict
    if tokens:
        low, high = tokens.groups()
        return low if low == high else f"{low}:{high}"
    return str(value)
