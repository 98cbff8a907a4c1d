"""Work through a job's plan on a background thread, ahead of the parties that consume it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
_MISSING = object()


class Ahead(Generic[T]):
    """Computes ``produce(0), produce(1), ...`` in order on its own thread.

    :meth:`get` hands each result out once, waiting only if the consumer has
    caught up with the producer. An exception from ``produce`` stops the work
    and is raised to whoever asks for that item or any later one.
    """

    def __init__(self, produce: Callable[[int], T], count: int, name: str) -> None:
        self._ready: dict[int, T] = {}
        self._failure: tuple[int, BaseException] | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(
            target=self._work, args=(produce, count), name=name, daemon=True
        )
        self._thread.start()

    def _work(self, produce: Callable[[int], T], count: int) -> None:
        for index in range(count):
            try:
                result = produce(index)
            except BaseException as exc:  # handed to the consumer that asks
                with self._cond:
                    self._failure = (index, exc)
                    self._cond.notify_all()
                return
            with self._cond:
                self._ready[index] = result
                self._cond.notify_all()

    def get(self, index: int) -> T:
        """Item ``index``, once; blocks until the producer has made it."""
        ready = self._ready.pop(index, _MISSING)  # the producer is usually ahead: no lock
        if ready is not _MISSING:
            return ready  # type: ignore[return-value]
        with self._cond:
            self._cond.wait_for(
                lambda: (
                    index in self._ready
                    or (self._failure is not None and self._failure[0] <= index)
                )
            )
            if index in self._ready:
                return self._ready.pop(index)
            assert self._failure is not None
            raise self._failure[1]
