"""Tests for skvoxel._progress: the progress bar and its verbosity rule."""

import io

import pytest

from skvoxel._progress import Progress, _is_terminal


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self):
        return True


class Clock:
    """A clock that moves only when told to."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def run(progress, clock, steps, *, seconds_per_step):
    """Update ``progress`` with each running total, advancing the clock."""
    for done in steps:
        clock.now += seconds_per_step
        progress.update(done)
    progress.close()


@pytest.mark.parametrize("verbose", [0, False])
def test_verbose_0_is_silent_even_on_a_terminal(verbose):
    """verbose=0 writes nothing, however long the loop and whatever the stream."""
    stream, clock = Terminal(), Clock()
    progress = Progress(100, verbose=verbose, stream=stream, clock=clock)
    run(progress, clock, range(10, 101, 10), seconds_per_step=5.0)
    assert stream.getvalue() == ""


@pytest.mark.parametrize("verbose", [1, True])
def test_verbose_1_is_silent_without_a_terminal(verbose):
    """verbose=1 writes nothing to a pipe or file, even for a long loop."""
    stream, clock = io.StringIO(), Clock()
    progress = Progress(100, verbose=verbose, stream=stream, clock=clock)
    run(progress, clock, range(10, 101, 10), seconds_per_step=5.0)
    assert stream.getvalue() == ""


def test_verbose_1_short_loop_on_a_terminal_stays_silent():
    """A loop done within the delay draws no bar at all."""
    stream, clock = Terminal(), Clock()
    progress = Progress(100, verbose=1, stream=stream, clock=clock, delay=0.5)
    run(progress, clock, range(10, 101, 10), seconds_per_step=0.01)
    assert stream.getvalue() == ""


def test_verbose_1_long_loop_draws_a_bar_after_the_delay():
    """On a terminal the bar appears once the delay has passed, then ends its line."""
    stream, clock = Terminal(), Clock()
    progress = Progress(
        1000, verbose=1, label="fit", stream=stream, clock=clock, delay=0.5
    )
    clock.now = 0.2
    progress.update(100)
    assert stream.getvalue() == ""  # still within the delay
    clock.now = 1.0
    progress.update(500)
    drawn = stream.getvalue()
    assert (
        drawn.startswith("\rfit [") and "50%" in drawn and "500/1,000 voxels" in drawn
    )
    assert "~1 s left" in drawn
    clock.now = 2.0
    progress.update(1000)
    progress.close()
    text = stream.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    last = text.rstrip("\n").split("\r")[-1]
    assert "100%" in last and "1,000/1,000 voxels, 2.0 s" in last
    assert "[" + "#" * 30 + "]" in last


def test_verbose_2_draws_the_bar_from_the_start_on_a_terminal():
    """verbose=2 on a terminal does not wait for the delay."""
    stream, clock = Terminal(), Clock()
    progress = Progress(10, verbose=2, stream=stream, clock=clock, delay=100.0)
    progress.update(1)
    assert "10%" in stream.getvalue()


def test_bar_redraws_are_throttled_but_the_end_is_drawn():
    """Many quick updates redraw about every 0.1 s; the final state always shows."""
    stream, clock = Terminal(), Clock()
    progress = Progress(1000, verbose=2, stream=stream, clock=clock)
    run(progress, clock, range(1, 1001), seconds_per_step=0.001)  # 1 s in all
    draws = stream.getvalue().split("\r")[1:]
    assert 8 <= len(draws) <= 14
    assert "100%" in draws[-1]


def test_a_shorter_redraw_covers_the_previous_one():
    """Each draw is padded to the length of the one before, leaving no stale text."""
    stream, clock = Terminal(), Clock()
    progress = Progress(10_000, verbose=2, stream=stream, clock=clock)
    clock.now = 1.0
    progress.update(5)  # a long "time left"
    clock.now = 2.0
    progress.update(10_000)  # no "time left"
    first, second = stream.getvalue().split("\r")[1:]
    assert "left" in first and "left" not in second
    assert len(second) >= len(first)


def test_verbose_2_without_a_terminal_writes_a_line_per_tenth():
    """Lines at each tenth done, and a last line with the total time."""
    stream, clock = io.StringIO(), Clock()
    progress = Progress(200, verbose=2, label="fit", stream=stream, clock=clock)
    run(progress, clock, range(5, 201, 5), seconds_per_step=0.1)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[0] == "fit: 10% (20 of 200 voxels, 0.4 s)"
    assert [line.split()[1] for line in lines[:9]] == [
        f"{p}%" for p in range(10, 100, 10)
    ]
    assert lines[-1] == "fit: done, 200 voxels in 4.0 s"
    assert "\r" not in stream.getvalue()


def test_close_reports_where_an_unfinished_loop_stopped():
    """A loop closed early (an error) says how far it got."""
    stream, clock = io.StringIO(), Clock()
    progress = Progress(100, verbose=2, stream=stream, clock=clock, unit="items")
    progress.update(40)
    progress.close()
    assert stream.getvalue().splitlines()[-1] == (
        "progress: stopped at 40 of 100 items in 0.0 s"
    )


def test_context_manager_ends_the_bar_line_when_the_loop_raises():
    """Leaving the with block by an exception still ends the bar's line."""
    stream, clock = Terminal(), Clock()
    with pytest.raises(RuntimeError, match="in the loop"):
        with Progress(10, verbose=2, stream=stream, clock=clock) as progress:
            progress.update(3)
            raise RuntimeError("in the loop")
    assert stream.getvalue().endswith("\n")


def test_close_twice_and_updates_after_close_write_nothing_more():
    """close() is idempotent, and a closed progress ignores updates."""
    stream, clock = io.StringIO(), Clock()
    progress = Progress(10, verbose=2, stream=stream, clock=clock)
    progress.update(10)
    progress.close()
    written = stream.getvalue()
    progress.close()
    progress.update(5)
    assert stream.getvalue() == written


def test_updates_are_clipped_to_the_total():
    """A running total past either end is clipped to [0, total]."""
    stream, clock = Terminal(), Clock()
    progress = Progress(10, verbose=2, stream=stream, clock=clock)
    progress.update(25)
    assert "10/10 voxels" in stream.getvalue()
    clock.now = 1.0
    progress.update(-3)
    assert stream.getvalue().split("\r")[-1].startswith("progress [---")


def test_empty_loop_closes_cleanly():
    """A loop over nothing reports done without dividing by zero."""
    stream, clock = io.StringIO(), Clock()
    with Progress(0, verbose=2, stream=stream, clock=clock) as progress:
        progress.update(0)
    assert stream.getvalue() == "progress: done, 0 voxels in 0.0 s\n"


def test_default_stream_is_stderr_at_construction(capsys):
    """stream=None writes to sys.stderr (here captured, so not a terminal)."""
    progress = Progress(10, verbose=2, clock=Clock())
    progress.update(10)
    progress.close()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "progress: done, 10 voxels in 0.0 s\n"


def test_streams_without_isatty_or_closed_are_not_terminals():
    """Objects without isatty, and closed files, count as not a terminal."""
    closed = io.StringIO()
    closed.close()
    assert not _is_terminal(object())
    assert not _is_terminal(closed)
    assert _is_terminal(Terminal())
