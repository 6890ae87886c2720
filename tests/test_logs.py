"""Per-connection loggers of a server: built only when something is logged through them, with
the same names and behaviour as a child built up front."""

from __future__ import annotations

import logging

import pytest

from femtows.logs import _LazyChildLogger, connection_logger, connection_logger_factory


def test_lazy_child_names_follow_connection_order() -> None:
    new = connection_logger_factory("lazytest", "server")
    first, second = new(), new()
    assert isinstance(first, _LazyChildLogger) and isinstance(second, _LazyChildLogger)
    a, b = int(first.name.rsplit(".", 1)[1]), int(second.name.rsplit(".", 1)[1])
    assert first.name.startswith("femtows.lazytest.") and b > a
    assert first._child is None and second._child is None


def test_nothing_built_while_nothing_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="femtows.lazyquiet")
    child = connection_logger_factory("lazyquiet", "server")()
    assert isinstance(child, _LazyChildLogger)
    assert not child.isEnabledFor(logging.INFO)
    child.info("not logged %s", 1)
    child.log(9, "not logged either")
    assert child._child is None
    assert caplog.records == []


def test_first_record_builds_the_child(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="femtows.lazyloud")
    child = connection_logger_factory("lazyloud", "server")()
    assert isinstance(child, _LazyChildLogger)
    assert child.isEnabledFor(logging.INFO)
    child.info("hello %s", "world")
    try:
        raise ValueError("boom")
    except ValueError:
        child.exception("failed")
    real = child._child
    assert isinstance(real, logging.Logger) and real.name == child.name
    assert real.parent is logging.getLogger("femtows.lazyloud")
    assert not any(n == child.name for n in logging.root.manager.loggerDict)
    records = [r for r in caplog.records if r.name == child.name]
    assert [r.getMessage() for r in records] == ["hello world", "failed"]
    assert records[1].exc_info is not None and records[1].levelno == logging.ERROR
    # The record points at the code that logged, not at the proxy.
    assert records[0].pathname == __file__
    assert child.getEffectiveLevel() == logging.INFO  # anything else: the real child's


def test_disabled_parent_still_passes_children_records(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As with a child built up front: a disabled parent (dictConfig's
    disable_existing_loggers) does not silence its unregistered children."""
    parent = logging.getLogger("femtows.lazydisabled")
    caplog.set_level(logging.INFO, logger=parent.name)
    parent.disabled = True
    try:
        child = connection_logger_factory(parent, "server")()
        child.info("still here")
        assert [r.getMessage() for r in caplog.records if r.name == child.name] == ["still here"]
    finally:
        parent.disabled = False


def test_client_logger_is_a_real_logger() -> None:
    logger = connection_logger("lazyclient", "client")
    assert isinstance(logger, logging.Logger)
    assert logger.name.startswith("femtows.lazyclient.")
