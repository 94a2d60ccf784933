"""How a capacity session gets one bench run made against a served plan: `LiveRuns` sends it to the URL, a
replay answers from recorded runs in tests."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Protocol

from paretoserve.bench.config import BenchConfig
from paretoserve.bench.runner import run_bench


class BenchRuns(Protocol):
    """One bench run: the result `run_bench` returns, its requests included."""

    def run(self, bench: BenchConfig) -> dict: ...


@dataclasses.dataclass(frozen=True)
class LiveRuns:
    """Each run sent by `run_bench`; with a `url` (a plan served for this session) every run goes there, with
    the session's `api_key`, whatever URL the config names."""

    url: str | None = None
    api_key: str | None = dataclasses.field(default=None, repr=False)

    def run(self, bench: BenchConfig) -> dict:
        if self.url is not None:
            bench = dataclasses.replace(bench, url=self.url,
                                        access=dataclasses.replace(bench.access, api_key=self.api_key))
        return asyncio.run(run_bench(bench, keep_requests=True))
