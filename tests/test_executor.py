"""The process pool's bookkeeping when a worker dies, with a stand-in pool whose breaking time is chosen."""

from __future__ import annotations

from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import smugir.executor as executor


class _BreaksOnSubmit:
    """A pool that runs each task at submit and, in its first instance only, is found broken at the
    third submit: the moment between a wait that saw only good results and the next submit, which the
    real pool reaches when a worker dies just after finishing (a race CI once lost)."""

    instances = 0

    def __init__(self, *args, **kwargs):
        type(self).instances += 1
        self.first = type(self).instances == 1
        self.submits = 0

    def submit(self, function, *args):
        self.submits += 1
        if self.first and self.submits == 3:
            raise BrokenProcessPool("a child process terminated abruptly")
        future: Future = Future()
        future.set_result(function(*args))
        return future

    def shutdown(self, wait=True, cancel_futures=False):
        pass


def test_a_pool_found_broken_at_submit_loses_no_task(monkeypatch):
    monkeypatch.setattr(executor, "ProcessPoolExecutor", _BreaksOnSubmit)
    _BreaksOnSubmit.instances = 0
    results, lost = [], []
    executor.run_pool(2, abs, [(-i,) for i in range(7)], results.append, lambda task, why: lost.append(task))
    assert sorted(results) == list(range(7)) and not lost
    assert _BreaksOnSubmit.instances == 2  # the rest went on in a new pool, none retried alone
