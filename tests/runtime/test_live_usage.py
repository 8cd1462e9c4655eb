"""Tokens as they are spent: a provider can take a minute to answer, and usage is recorded with each turn,
so until the first replies every count read 0. The prompts of calls under way are counted as in flight,
each reply as it arrives; at the end the live count is the recorded one."""

from __future__ import annotations

import threading
import time

from swarm_tasks.agents.children import ChildRequest
from swarm_tasks.api import RunHandle


def test_the_prompt_of_a_call_under_way_is_counted_before_any_reply(local, make_spec) -> None:
    spec = make_spec("lister", "slow_replier")
    run = local.start([spec], [ChildRequest("lister", "list the files", key="only")])
    handle = RunHandle(local.services, run.id)
    worker = threading.Thread(target=local.drain)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        progress = handle.progress()
        while progress.in_flight_tokens == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
            progress = handle.progress()
        assert progress.tokens == 0 and progress.spent_tokens == 0  # nothing has come back yet
        assert progress.in_flight_tokens > 0 and progress.live_tokens == progress.in_flight_tokens
    finally:
        worker.join(60)
    final = handle.progress()
    assert final.in_flight_tokens == 0 and final.tokens > 0
    assert final.live_tokens == final.tokens == final.spent_tokens  # every reply counted once
