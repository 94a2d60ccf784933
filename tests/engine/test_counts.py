"""The counts the 429 check reads (Engine.waiting_count, free_slots), with the engine thread's part played by the
test one call at a time: no model, no thread, no timing."""

import asyncio
from pathlib import Path

from paretoserve.engine.config import EngineConfig
from paretoserve.engine.core import Engine
from paretoserve.engine.sampling import SamplingParams


def test_a_request_taken_from_the_inbox_counts_as_waiting_until_it_is_admitted_or_aborted():
    # The 429 check once read the inbox and the state of the last step: a request the engine thread had taken
    # from the inbox, during the step that followed, was counted nowhere, and the check let one more in (on a
    # busy machine, where steps are slow, often enough to fail the full-queue test).
    engine = Engine(EngineConfig(model_path=Path("unused.gguf"), model_name="m", max_batch=1, ctx_per_seq=64,
                                 threads=1, max_queue=1))

    async def submit_take_abort() -> list[tuple[int, int]]:
        request = asyncio.ensure_future(anext(engine.generate([1, 2, 3], SamplingParams(max_tokens=4))))
        await asyncio.sleep(0)  # the request is in the inbox; it waits for its first token
        counts = [(engine.waiting_count(), engine.free_slots())]
        engine._take_inbox()  # the engine thread takes it into its queue: the step that admits it comes later
        counts.append((engine.waiting_count(), engine.free_slots()))
        request.cancel()  # the client leaves before it started
        await asyncio.gather(request, return_exceptions=True)
        engine._take_inbox()  # the abort
        counts.append((engine.waiting_count(), engine.free_slots()))
        return counts

    assert asyncio.run(submit_take_abort()) == [(1, 1), (1, 1), (0, 1)]
