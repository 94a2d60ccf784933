"""The throughputs a run summary holds, as vLLM's `bench serve` names them; every reader of a summary (the
advisor's --throughput-metric, repeats, the vLLM import) takes the names from here."""

from __future__ import annotations

import typing
from typing import Literal

# output tokens/s (the advisor's default), prompt + output tokens/s, requests/s
ThroughputMetric = Literal["output_throughput", "total_token_throughput", "request_throughput"]
THROUGHPUT_METRICS: tuple[str, ...] = typing.get_args(ThroughputMetric)
GOODPUT = "request_goodput"  # completed requests/s within every --slo bound; null without an SLO
