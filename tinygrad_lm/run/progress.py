"""A progress bar on stderr for long loops that are not training runs (`evaluate`), with no dependency.

On a terminal: one line redrawn in place (carriage return), first drawn after `delay` seconds (short
work shows nothing), then at most 10 times a second, erased by `close()`. Elsewhere (stderr to a
file or a pipe): a plain line at every tenth of the work, once the work has run for 10 x `delay`
seconds, so a log gets at most ten lines and a quick job none. `enabled=False` (--quiet) draws nothing.
Leaves out: nested bars and rates in items per second (tqdm's); a training run prints its own
progress lines (loop.py).
"""
import time


class Progress:
    """Call it with (done, total) after each piece of work, then `close()` (module docstring).

    Args:
        what: the words before the counts ("scoring windows"); stream: where to draw (sys.stderr).
        enabled: False draws nothing; delay: seconds before a terminal bar first appears.
    """

    def __init__(self, what, stream, enabled=True, delay=1.0):
        self.what, self.stream, self.enabled, self.delay = what, stream, enabled, delay
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.start, self.last, self.tenth, self.drawn = time.perf_counter(), 0.0, 0, False

    def __call__(self, done, total):
        if not self.enabled:
            return
        now = time.perf_counter()
        elapsed = now - self.start
        eta = elapsed / done * (total - done) if done else 0.0
        line = f"{self.what}: {done}/{total} ({100 * done / total:.0f}%) | {elapsed:.0f}s, about {eta:.0f}s left"
        if self.tty:
            if elapsed >= self.delay and (now - self.last >= 0.1 or done == total):
                bar = "#" * int(20 * done / total)
                self.stream.write(f"\r[{bar:<20}] {line}")
                self.stream.flush()
                self.last, self.drawn = now, True
        elif elapsed >= 10 * self.delay and 10 * done // total > self.tenth:
            self.tenth = 10 * done // total
            print(line, file=self.stream, flush=True)

    def close(self):
        """Erase the terminal line, so the results print on a clean line."""
        if self.drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
