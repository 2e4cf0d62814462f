"""Long Python calls report progress: every step through logging, a status line only on a terminal."""

import logging

from trimnet.optimize.progress import reporter, wants_bar


def test_messages_go_to_logging_by_default_and_no_bar_under_ci(monkeypatch, caplog):
    monkeypatch.setenv("CI", "1")
    assert not wants_bar()
    say = reporter(None)
    assert say.status is None  # CI set: no status line
    with caplog.at_level(logging.INFO, logger="trimnet.optimize"):
        say("pruned l1-0.5: validation accuracy 0.98")
    say.close()
    assert "pruned l1-0.5" in caplog.text


def test_a_callable_takes_the_messages(caplog):
    got = []
    say = reporter(got.append)
    with caplog.at_level(logging.INFO, logger="trimnet.optimize"):
        say("winner: x")
    say.close()
    assert got == ["winner: x"] and "winner: x" not in caplog.text


def test_progress_true_shows_a_status_line_that_stops(monkeypatch):
    say = reporter(True)
    assert say.status is not None
    say("fusing")
    say.close()
    assert say.status is None
