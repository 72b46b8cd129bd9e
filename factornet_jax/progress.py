"""Console output that is not a result, all on stderr: a dependency-free progress bar (shown
only on a terminal), progress lines and warnings. Results go to stdout and files."""
import sys
import time


def log_progress(message, file=None):
    """A progress line (epoch done, stage started) on stderr; `file` is accepted and ignored,
    so it can stand where `print` was passed as `log`."""
    print(message, file=sys.stderr, flush=True)


def warn(message):
    """`factornet: warning: <message>` on stderr."""
    print(f"factornet: warning: {message}", file=sys.stderr, flush=True)


class Progress:
    """Counts work done; draws `label [####....] n/total rate` on a TTY, stays silent otherwise.

    Use as a context manager: `with Progress("chr1", total=n) as bar: bar.update(k)`.
    """

    def __init__(self, label, total=None, unit="it", stream=None, enabled=None):
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.done = 0
        self.postfix = ""
        self._start = time.perf_counter()
        self._last_draw = 0.0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def update(self, n=1, postfix=None):
        self.done += n
        if postfix is not None:
            self.postfix = postfix
        now = time.perf_counter()
        if self.enabled and (now - self._last_draw > 0.1 or self.done == self.total):
            self._last_draw = now
            self._draw(now)

    def _draw(self, now):
        rate = self.done / max(now - self._start, 1e-9)
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 24) + "." * (24 - int(frac * 24))
            text = f"{self.label} [{bar}] {self.done}/{self.total} {rate:,.0f} {self.unit}/s {self.postfix}"
        else:
            text = f"{self.label} {self.done} {rate:,.0f} {self.unit}/s {self.postfix}"
        self.stream.write("\r" + text[:160].ljust(80))
        self.stream.flush()

    @property
    def elapsed(self):
        return time.perf_counter() - self._start

    def close(self):
        if self.enabled:
            self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()
