"""Model parameters <-> Flower's ArrayRecord (one named array per parameter), for both apps."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from flwr.app import Array, ArrayRecord

from fedcore.models import Params


def to_record(params: Params) -> ArrayRecord:
    return ArrayRecord({key: Array(np.ascontiguousarray(value)) for key, value in params.items()})


def from_record(record: ArrayRecord) -> Params:
    return {key: array.numpy() for key, array in record.items()}


def number(record: Mapping[str, object], key: str) -> float:
    """A scalar value of a metric or config record (Flower's records also hold lists, strings and bytes)."""
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"record field {key!r} is {value!r}, not a number")
    return value
