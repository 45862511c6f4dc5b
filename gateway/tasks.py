"""Owned background tasks: every task is kept until it ends, and an error is logged, never
lost (no fire-and-forget)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class OwnedTasks:
    def __init__(self, what: str, on_done: Callable[[], None] | None = None) -> None:
        self.what = what
        self._on_done = on_done
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._reap)
        return task

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed: %r", self.what, task.exception())
        if self._on_done is not None:
            self._on_done()

    async def wait(self, within: float) -> None:
        """Let running tasks finish for up to ``within`` seconds."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=within)

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()
