"""Progress of long loops: a bar on a terminal's stderr, silence elsewhere."""

import sys
import time

__all__ = ["Progress"]

# Redraw a bar at most this often (seconds); the last state is always drawn.
_REDRAW_EVERY = 0.1
# Without a terminal, verbose >= 2 writes a line each time another tenth is done.
_LINE_STEPS = 10
_BAR_WIDTH = 30


class Progress:
    """Report how much of a loop over ``total`` items is done, on stderr.

    The verbosity rule, shared by ``MassUnivariateOLS(verbose=...)`` and the
    ``skvoxel`` command line (``--quiet`` 0, default 1, ``--verbose`` 2):

    - ``0`` or ``False``: nothing, ever.
    - ``1`` or ``True``: a bar redrawn in place, only when ``stream`` is a
      terminal, and only once the work has lasted ``delay`` seconds, so
      that short loops stay silent. Nothing at all when ``stream`` is not a
      terminal (a pipe, a log file, a notebook).
    - ``2`` or more: on a terminal, the bar from the start; elsewhere, a
      plain line each time another tenth of the work is done, and one at
      the end.

    Parameters
    ----------
    total : int
        Number of items the loop processes (e.g. voxels).
    verbose : int or bool, default=1
        The verbosity, as above.
    label : str, default="progress"
        What the loop does, written at the start of the bar or line.
    unit : str, default="voxels"
        The name of the items.
    stream : file-like or None, default=None
        Where to write; ``None`` uses ``sys.stderr`` as it is at
        construction.
    delay : float, default=0.5
        Seconds before a ``verbose=1`` bar first appears.
    clock : callable, default=time.monotonic
        Returns the time in seconds; replaceable in tests.

    Examples
    --------
    Not a terminal and ``verbose=1``: silent.

    >>> import io
    >>> log = io.StringIO()
    >>> with Progress(100, verbose=1, label="fit", stream=log) as progress:
    ...     for done in (50, 100):
    ...         progress.update(done)
    >>> log.getvalue()
    ''

    ``verbose=2`` writes plain lines where there is no terminal:

    >>> ticks = iter([0.0, 1.0, 2.0, 2.0])
    >>> progress = Progress(
    ...     100, verbose=2, label="fit", stream=log, clock=lambda: next(ticks)
    ... )
    >>> progress.update(50)
    >>> progress.update(100)
    >>> progress.close()
    >>> print(log.getvalue(), end="")
    fit: 50% (50 of 100 voxels, 1.0 s)
    fit: done, 100 voxels in 2.0 s
    """

    def __init__(
        self,
        total,
        *,
        verbose=1,
        label="progress",
        unit="voxels",
        stream=None,
        delay=0.5,
        clock=time.monotonic,
    ):
        self.total = int(total)
        self.label = label
        self.unit = unit
        self._stream = sys.stderr if stream is None else stream
        self._clock = clock
        self._start = clock()
        self._done = 0
        self._closed = False
        self._drawn = False  # a bar is on screen: close() ends its line
        self._last_draw = None
        self._last_width = 0
        self._lines_written = 0  # tenths already reported as lines
        level = int(verbose)
        terminal = level > 0 and _is_terminal(self._stream)
        if terminal:
            self._mode = "bar"
            self._delay = delay if level == 1 else 0.0
        elif level >= 2:
            self._mode = "lines"
        else:
            self._mode = "silent"

    def update(self, n_done):
        """Record that ``n_done`` items (a running total) are done.

        Parameters
        ----------
        n_done : int
            Items done so far, between 0 and ``total``.
        """
        self._done = min(max(int(n_done), 0), self.total)
        if self._mode == "silent" or self._closed:
            return
        now = self._clock()
        if self._mode == "lines":
            self._write_lines(now)
            return
        if not self._drawn and now - self._start < self._delay:
            return
        finished = self._done >= self.total
        if (
            self._last_draw is None
            or finished
            or now - self._last_draw >= _REDRAW_EVERY
        ):
            self._draw_bar(now)

    def close(self):
        """Finish: end the bar's line, or write the closing line."""
        if self._closed:
            return
        self._closed = True
        if self._mode == "bar" and self._drawn:
            self._draw_bar(self._clock())
            self._write("\n")
        elif self._mode == "lines":
            elapsed = self._clock() - self._start
            if self._done >= self.total:
                status = f"done, {self.total:,}"
            else:
                status = f"stopped at {self._done:,} of {self.total:,}"
            self._write(f"{self.label}: {status} {self.unit} in {elapsed:.1f} s\n")

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _draw_bar(self, now):
        elapsed = now - self._start
        fraction = self._done / self.total if self.total else 1.0
        filled = int(round(fraction * _BAR_WIDTH))
        bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
        text = (
            f"\r{self.label} [{bar}] {fraction:4.0%} {self._done:,}/{self.total:,} "
            f"{self.unit}, {elapsed:.1f} s"
        )
        if 0 < fraction < 1:
            text += f", ~{elapsed * (1 - fraction) / fraction:.0f} s left"
        # Pad over what a longer previous draw left on the line.
        self._write(text.ljust(self._last_width))
        self._last_width = len(text)
        self._last_draw = now
        self._drawn = True

    def _write_lines(self, now):
        if not self.total:
            return
        tenths = self._done * _LINE_STEPS // self.total
        if tenths > self._lines_written and self._done < self.total:
            self._lines_written = tenths
            self._write(
                f"{self.label}: {self._done / self.total:.0%} ({self._done:,} of "
                f"{self.total:,} {self.unit}, {now - self._start:.1f} s)\n"
            )

    def _write(self, text):
        self._stream.write(text)
        self._stream.flush()


def _is_terminal(stream):
    """Whether ``stream`` is an open terminal."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False
