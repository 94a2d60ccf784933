"""advice.json: the `Advice` that `advise --json` prints and `tune` writes, read back by `report --advice`,
`serve --plan` and `tune`.

- `write_advice(advice, path)` and `advice_json(advice)`: the file and the text, the same for every writer.
- `read_advice(path, flag)`: the whole advice, checked against `Advice`.
- `read_plan(path, flag)`: only what `serve` deploys, `replica_plan` (replicas, max_batch, threads_per_replica)
  and `commands.ctx_per_seq`; a file holding just these, or a bare replica-plan object (which may also give
  `kv_tokens`), is enough, so a plan can be written by hand.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from pydantic import ValidationError

from paretoserve.advise.advice import Advice
from paretoserve.limits import UserError

ADVICE_FILE = "advice.json"


class AdviceFileError(UserError):
    """An advice file that cannot be read or is not advise's output; the message names the flag and the field."""


@dataclass(frozen=True)
class PlanSettings:
    """The replica plan of an advice file as `serve` deploys it: each replica's settings that the file gives."""

    replicas: int | None = None
    max_batch: int | None = None
    kv_tokens: int | None = None  # only a bare replica-plan object gives it; advise's plan leaves it to the engine
    threads_per_replica: int | None = None
    ctx_per_seq: int | None = None  # from advise's `commands`, beside the plan

    def given(self) -> dict[str, int]:
        """The settings the file gives, by name."""
        return {name: value for name, value in asdict(self).items() if value is not None}


PLAN_FIELDS = tuple(f.name for f in fields(PlanSettings))


def advice_json(advice: Advice) -> str:
    """The advice as `advise --json` prints it and advice.json holds it."""
    return json.dumps(advice.model_dump(), indent=2)


def write_advice(advice: Advice, path: str | Path) -> Path:
    """Write `advice` to `path` (advice.json)."""
    path = Path(path)
    path.write_text(advice_json(advice))
    return path


def read_advice(path: str | Path, flag: str = "--advice") -> Advice:
    """A saved advice; AdviceFileError naming `flag` when the file is missing or is not advise's output."""
    try:
        return Advice.model_validate_json(Path(path).read_bytes())
    except OSError as exc:
        raise AdviceFileError(f"{flag}: cannot read {path}: {exc.strerror or exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "the file"
        raise AdviceFileError(f"{flag}: {path} is not `paretoserve advise --json` output ({where}: {first['msg']}); "
                              f"save one with `paretoserve advise DIR --json > {ADVICE_FILE}`") from exc


def read_plan(path: str | Path, flag: str = "--plan") -> PlanSettings:
    """The replica plan of an advice file (or of a bare replica-plan object), each setting present checked to be a
    positive integer (threads_per_replica: 0 or more); AdviceFileError naming `flag` and the field."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise AdviceFileError(f"{flag}: cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise AdviceFileError(f"{flag}: {path} is not valid JSON: {exc}") from exc
    plan = data.get("replica_plan", data) if isinstance(data, dict) else None
    if not isinstance(plan, dict) or "replicas" not in plan:
        raise AdviceFileError(f"{flag}: {path} has no replica_plan object with a 'replicas' field "
                              "(expected the JSON that `paretoserve advise --json` prints)")
    commands = data.get("commands") if isinstance(data, dict) else None
    if isinstance(commands, dict) and plan.get("ctx_per_seq") is None:
        plan = {**plan, "ctx_per_seq": commands.get("ctx_per_seq")}  # advise puts the context beside its commands
    for name in PLAN_FIELDS:
        value = plan.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value < (0 if name == "threads_per_replica" else 1)):
            raise AdviceFileError(f"{flag}: replica_plan.{name} must be a positive integer; got {value!r}")
    return PlanSettings(**{name: plan.get(name) for name in PLAN_FIELDS})
