"""Model parameters <-> Flower's ArrayRecord (one named array per parameter), for both apps."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord

from fedcore.models import Params


def to_record(params: Params) -> ArrayRecord:
    return ArrayRecord({key: Array(np.ascontiguousarray(value)) for key, value in params.items()})


def from_record(record: ArrayRecord) -> Params:
    return {key: array.numpy() for key, array in record.items()}
