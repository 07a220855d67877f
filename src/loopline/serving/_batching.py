"""Micro-batching: concurrent requests to one model run as one predict call.

Requests queue per model. When the model is idle, the first request starts a batch at
once: the batcher only yields to the event loop so that requests already received can
join, and keeps collecting while more keep arriving, at most `max_wait_ms` and
`max_batch_size` rows. While a batch runs in the worker thread, new requests queue and
form the next one. So a lone client never waits for company, and under load the batches
fill by themselves.

A batch that fails is run again request by request, so that only the request whose row
the model refuses gets the error (422) and the others still get their predictions.

Predict calls run in a worker thread, except for models whose one-row predict is faster
than handing work to a thread and back (a profile on this 2-core machine showed ~0.27 ms
of wall time per hand-off, mostly waiting to get the GIL back, against ~20 µs for an
onnxruntime call): those run on the event loop, which they block for less time than the
hand-off would cost.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING

from loopline.errors import InvalidInput, LooplineError
from loopline.serving._inputs import Block

if TYPE_CHECKING:
    from loopline.serving.runtime import Prediction

log = logging.getLogger(__name__)


class MicroBatcher:
    """Runs `predict` on merged blocks in `executor`, one batch at a time per model.

    `on_batch(requests, rows)` is called on the event loop after every predict call.
    `max_batch_size=1` turns batching off: each request runs alone. `inline=True` runs
    `predict` on the event loop itself, for models faster than a hand-off to a thread.
    """

    def __init__(
        self,
        predict: Callable[[Block], Prediction],
        executor: Executor,
        *,
        max_batch_size: int = 64,
        max_wait_ms: float = 2.0,
        on_batch: Callable[[int, int], None] | None = None,
        inline: bool = False,
    ) -> None:
        if max_batch_size < 1:
            raise InvalidInput(f"max_batch_size must be at least 1, got {max_batch_size}")
        if not max_wait_ms >= 0:
            raise InvalidInput(f"max_batch_wait_ms must be >= 0, got {max_wait_ms}")
        self._predict = predict
        self._executor = executor
        self._max_rows = max_batch_size
        self._max_wait = max_wait_ms / 1000.0
        self._on_batch = on_batch
        self._inline = inline
        self._queue: deque[tuple[Block, asyncio.Future[Prediction]]] = deque()
        self._task: asyncio.Task[None] | None = None

    async def submit(self, block: Block) -> Prediction:
        """The predictions for `block`'s rows, computed alone or with other requests'."""
        loop = asyncio.get_running_loop()
        if self._max_rows == 1:
            outcome = (await self._call([block], loop))[0]
            self._batched(1, block.n_rows)
            if isinstance(outcome, LooplineError):
                raise outcome
            return outcome
        future: asyncio.Future[Prediction] = loop.create_future()
        self._queue.append((block, future))
        if self._task is None:
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                await self._collect(loop)
                batch = self._take()
                blocks = [block for block, _ in batch]
                try:
                    outcomes = await self._call(blocks, loop)
                except BaseException as exc:  # the executor is shutting down
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    raise
                self._batched(len(blocks), sum(block.n_rows for block in blocks))
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():  # the client went away
                        continue
                    if isinstance(outcome, LooplineError):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self._task = None

    async def _collect(self, loop: asyncio.AbstractEventLoop) -> None:
        """Let requests that have already arrived join, while they keep coming."""
        deadline = loop.time() + self._max_wait
        while self._queued_rows() < self._max_rows and loop.time() < deadline:
            before = len(self._queue)
            await asyncio.sleep(0)
            if len(self._queue) == before:
                return

    async def _call(
        self, blocks: list[Block], loop: asyncio.AbstractEventLoop
    ) -> list[Prediction | LooplineError]:
        if self._inline:
            return self._run(blocks)
        return await loop.run_in_executor(self._executor, self._run, blocks)

    def _queued_rows(self) -> int:
        return sum(block.n_rows for block, _ in self._queue)

    def _take(self) -> list[tuple[Block, asyncio.Future[Prediction]]]:
        batch = [self._queue.popleft()]
        rows = batch[0][0].n_rows
        while self._queue and rows + self._queue[0][0].n_rows <= self._max_rows:
            item = self._queue.popleft()
            rows += item[0].n_rows
            batch.append(item)
        return batch

    def _run(self, blocks: list[Block]) -> list[Prediction | LooplineError]:
        """In the worker thread: one predict call, or one per request if that fails."""
        if len(blocks) > 1:
            try:
                prediction = self._predict(Block.concat(blocks))
            except LooplineError:
                pass  # find out whose rows the model refused
            else:
                outcomes: list[Prediction | LooplineError] = []
                start = 0
                for block in blocks:
                    outcomes.append(prediction.rows(start, start + block.n_rows))
                    start += block.n_rows
                return outcomes
        return [self._run_one(block) for block in blocks]

    def _run_one(self, block: Block) -> Prediction | LooplineError:
        try:
            return self._predict(block)
        except LooplineError as exc:
            return exc
        except Exception as exc:  # never leave a request without an answer
            log.exception("prediction failed")
            return InvalidInput(f"the model could not predict on this input: {exc}")

    def _batched(self, requests: int, rows: int) -> None:
        if self._on_batch is not None:
            self._on_batch(requests, rows)
