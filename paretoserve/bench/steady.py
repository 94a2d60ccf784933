"""The steady-state window: the span during which every slot of the server was busy.

With `slots` the number of requests that fill the server (the client's concurrency in closed loop;
the server's batch cap, read from /metrics, in rate and burst mode), the window runs from the
first moment the client had `slots` requests in flight (ramp-up over) to the last moment that
count fell below `slots` (drain begun). In closed loop that is from the N-th send to the first
end after the last send. Requests that were sent and ended inside the window are its requests;
its throughputs count the tokens that arrived inside it.
"""

from __future__ import annotations

from paretoserve.bench.records import RequestRecord


def in_flight_window(records: list[RequestRecord], slots: int) -> tuple[float, float] | None:
    """(start, end) in run seconds, or None if `slots` requests were never in flight together."""
    events = []
    for r in records:
        if r.sent_s is not None and r.end_s is not None:
            events.append((r.sent_s, 1))
            events.append((r.end_s, -1))
    events.sort(key=lambda e: (e[0], e[1]))  # at a tie, an end frees its slot before a send takes it
    count, start, end = 0, None, None
    for t, step in events:
        before = count
        count += step
        if start is None and count >= slots:
            start = t
        elif start is not None and before >= slots > count:
            end = t
    if start is None or end is None or end <= start:
        return None
    return start, end


def tokens_in(record: RequestRecord, start: float, end: float) -> float:
    """Output tokens of `record` that arrived in [start, end]; chunks share the usage count evenly."""
    if not record.token_s:
        return 0.0
    inside = sum(1 for t in record.token_s if start <= t <= end)
    return inside * record.output_tokens / len(record.token_s)
