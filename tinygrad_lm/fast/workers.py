"""Persistent worker threads: run a few functions at once and wait for all of them.

NumPy releases Python's GIL inside its loops and BLAS calls, so functions that mostly call
NumPy overlap on several cores when run on threads. The workers live for the whole process
(their memory arenas and caches stay warm between training steps). Errors in a worker are
re-raised in the caller, in list order; a Ctrl-C while waiting is remembered and re-raised
once every worker has finished, so no reply is left queued.
Leaves out: processes (models are not pickled) and any scheduling beyond "one function per
thread".
"""
import queue
import threading


class _Worker:
    """A daemon thread that runs the functions put in its inbox, one at a time."""

    def __init__(self):
        self.inbox, self.outbox = queue.SimpleQueue(), queue.SimpleQueue()
        threading.Thread(target=self._loop, daemon=True, name="tinygrad_lm-worker").start()

    def _loop(self):
        _inside.active = True  # a nested run_in_threads from here runs its functions in turn
        while True:
            fn = self.inbox.get()
            try:
                fn()
                self.outbox.put(None)
            except BaseException as e:  # handed to the caller, which re-raises it
                self.outbox.put(e)


_workers = []
_run_lock = threading.Lock()
_inside = threading.local()  # .active: this thread is running one of run_in_threads's functions


def run_in_threads(fns, parallel=True):
    """Call fns[0] in this thread and the others on persistent worker threads, all at once;
    return when all are done, re-raising the first exception (in list order) if any failed.
    The workers live for the whole process, so their memory arenas and caches stay warm.
    Called from inside one of those functions (nested), or with parallel=False (a busy machine:
    thread_choice.py), it runs its functions one after another in the calling thread instead."""
    if not parallel or getattr(_inside, "active", False):
        for fn in fns:
            fn()
        return
    with _run_lock:
        while len(_workers) < len(fns) - 1:
            _workers.append(_Worker())
        for worker, fn in zip(_workers, fns[1:]):
            worker.inbox.put(fn)
        errors = [None] * len(fns)
        _inside.active = True
        try:
            fns[0]()
        except BaseException as e:
            errors[0] = e
        finally:
            _inside.active = False
        for i, worker in enumerate(_workers[:len(fns) - 1], start=1):
            while True:  # wait for every worker, even through Ctrl-C, so no reply is left queued
                try:
                    errors[i] = worker.outbox.get()
                    break
                except BaseException as e:  # interrupted while waiting: remember it, keep waiting
                    errors[0] = errors[0] or e
    for e in errors:
        if e is not None:
            raise e
