"""The typed record of one request, stamped by the load generator inside its streaming loop.

All times are seconds on `time.perf_counter()`, relative to the run's start (the first intended
send). Latencies count from `intended_s`, the moment the load pattern meant the request to go out,
so time the request spent waiting inside the client is never hidden (no coordinated omission).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(slots=True)
class RequestRecord:
    index: int
    intended_s: float  # when the load pattern meant to send it
    requested_output_tokens: int  # max_tokens asked for
    input_tokens: int  # the server's usage.prompt_tokens, else the workload's count
    sent_s: float | None = None  # just before the request was handed to the connection
    token_s: list[float] = field(default_factory=list)  # arrival of every chunk that carried text
    end_s: float | None = None  # the stream ended (or the request failed)
    output_tokens: int = 0  # the server's usage.completion_tokens, else the chunks that carried text
    usage_reported: bool = False  # the counts above came from the server's usage
    error: str | None = None  # None = completed
    client_s: float = 0.0  # time this request spent in the client's own code (reading the answer)
    connection_retries: int = 0  # sent again because the server had dropped the pooled connection unanswered

    @property
    def ok(self) -> bool:
        return self.error is None and self.end_s is not None

    @property
    def first_token_s(self) -> float | None:
        return self.token_s[0] if self.token_s else None

    def to_dict(self) -> dict:
        return asdict(self)
