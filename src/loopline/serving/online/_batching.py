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
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput, LooplineError
from loopline.predictions import Block

if TYPE_CHECKING:
    from loopline.serving.runtime import Prediction

log = logging.getLogger(__name__)

# on_predicted(answered, merged): the tagged requests that got predictions, as (tag,
# block, prediction), and the batch's merged block and prediction when one predict call
# answered all of them (what the prediction log stores without per-request work).
OnPredicted = Callable[
    [list[tuple[Any, Block, "Prediction"]], "tuple[Block, Prediction] | None"], None
]


_Outcomes = tuple["list[Prediction | LooplineError]", "tuple[Block, Prediction] | None"]


class MicroBatcher:
    """Runs `predict` on merged blocks in `executor`, one batch at a time per model.

    `on_batch(requests, rows)` is called on the event loop after every predict call, and
    `on_predicted` (see OnPredicted) with the requests submitted with a `tag`.
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
        on_predicted: OnPredicted | None = None,
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
        self._on_predicted = on_predicted
        self._inline = inline
        self._queue: deque[tuple[Block, asyncio.Future[Prediction], Any]] = deque()
        self._task: asyncio.Task[None] | None = None

    async def submit(self, block: Block, tag: Any = None) -> Prediction:
        """The predictions for `block`'s rows, computed alone or with other requests'.
        With a `tag`, the request is reported to `on_predicted` once predicted."""
        loop = asyncio.get_running_loop()
        if self._max_rows == 1:
            outcomes, merged = await self._call([block], loop)
            self._batched(1, block.n_rows)
            outcome = outcomes[0]
            if isinstance(outcome, LooplineError):
                raise outcome
            self._report([(tag, block, outcome)], merged)
            return outcome
        future: asyncio.Future[Prediction] = loop.create_future()
        self._queue.append((block, future, tag))
        if self._task is None:
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                await self._collect(loop)
                batch = self._take()
                blocks = [block for block, _, _ in batch]
                try:
                    outcomes, merged = await self._call(blocks, loop)
                except BaseException as exc:  # the executor is shutting down
                    for _, future, _ in batch:
                        if not future.done():
                            future.set_exception(exc)
                    raise
                self._batched(len(blocks), sum(block.n_rows for block in blocks))
                answered = []
                for (block, future, tag), outcome in zip(batch, outcomes, strict=True):
                    if isinstance(outcome, LooplineError):
                        if not future.done():
                            future.set_exception(outcome)
                        continue
                    answered.append((tag, block, outcome))
                    if not future.done():  # else the client went away
                        future.set_result(outcome)
                self._report(answered, merged)
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

    async def _call(self, blocks: list[Block], loop: asyncio.AbstractEventLoop) -> _Outcomes:
        if self._inline:
            return self._run(blocks)
        return await loop.run_in_executor(self._executor, self._run, blocks)

    def _report(
        self,
        answered: list[tuple[Any, Block, Prediction]],
        merged: tuple[Block, Prediction] | None,
    ) -> None:
        if self._on_predicted is None:
            return
        tagged = [item for item in answered if item[0] is not None]
        if not tagged:
            return
        if len(tagged) != len(answered):
            merged = None  # the merged rows include untagged requests
        try:
            self._on_predicted(tagged, merged)
        except Exception:  # reporting never fails a prediction
            log.exception("reporting predictions failed")

    def _queued_rows(self) -> int:
        return sum(block.n_rows for block, _, _ in self._queue)

    def _take(self) -> list[tuple[Block, asyncio.Future[Prediction], Any]]:
        batch = [self._queue.popleft()]
        rows = batch[0][0].n_rows
        while self._queue and rows + self._queue[0][0].n_rows <= self._max_rows:
            item = self._queue.popleft()
            rows += item[0].n_rows
            batch.append(item)
        return batch

    def _run(self, blocks: list[Block]) -> _Outcomes:
        """In the worker thread: one predict call, or one per request if that fails; with
        the merged block and prediction when one call answered all."""
        if len(blocks) > 1:
            merged = Block.concat(blocks)
            try:
                prediction = self._predict(merged)
            except LooplineError:
                pass  # find out whose rows the model refused
            else:
                outcomes: list[Prediction | LooplineError] = []
                start = 0
                for block in blocks:
                    outcomes.append(prediction.rows(start, start + block.n_rows))
                    start += block.n_rows
                return outcomes, (merged, prediction)
        answers = [self._run_one(block) for block in blocks]
        if len(blocks) == 1 and not isinstance(answers[0], LooplineError):
            return answers, (blocks[0], answers[0])
        return answers, None

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
