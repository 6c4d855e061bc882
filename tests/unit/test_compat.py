"""The oslo.messaging and kombu patches (``herald.common.rpc.compat``) still fit upstream.

Each patch rebinds or relies on a private name. These tests fail when an
upgrade moves that name, changes its signature, or changes the code that
reads it (pinned by a hash of its source), and check that the patch still
has its effect. When one fails after an upgrade: read the new upstream code,
adapt the patch in compat.py, then update its version range and the pins.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import threading
import types
from collections.abc import Iterator
from typing import Any

import amqp
import pytest
from kombu.transport import pyamqp
from oslo_config import cfg
from oslo_messaging import server as messaging_server
from oslo_messaging._drivers import amqpdriver, impl_rabbit
from oslo_messaging._drivers import base as driver_base
from packaging.specifiers import SpecifierSet

from herald.common import config
from herald.common.rpc import compat


def _source_hash(function: Any) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


def _reads(code: types.CodeType, name: str) -> bool:
    return name in code.co_names or any(
        isinstance(const, types.CodeType) and _reads(const, name) for const in code.co_consts)


def _functions(cls: type) -> Iterator[tuple[str, types.FunctionType]]:
    for name, attr in vars(cls).items():
        if not inspect.isfunction(attr):
            continue
        yield name, attr
        # Decorators without functools.wraps (oslo's batch_poll_helper) keep
        # the real method in their closure.
        for cell in attr.__closure__ or ():
            if inspect.isfunction(cell.cell_contents):
                yield name, cell.cell_contents


def _readers(module: types.ModuleType, global_name: str) -> dict[str, str]:
    """``Class.method`` -> source hash of every method of ``module`` reading ``global_name``."""
    found = {}
    for class_name, cls in vars(module).items():
        if inspect.isclass(cls) and cls.__module__ == module.__name__:
            for name, function in _functions(cls):
                if _reads(function.__code__, global_name):
                    found[f"{class_name}.{name}"] = _source_hash(function)
    return found


@pytest.mark.parametrize("package, versions", [
    ("oslo.messaging", compat.OSLO_MESSAGING_VERSIONS),
    ("kombu", compat.KOMBU_VERSIONS),
])
def test_installed_upstream_is_the_one_the_patches_target(package: str,
                                                          versions: tuple[str, ...]) -> None:
    assert importlib.metadata.version(package) in SpecifierSet(",".join(versions))


# -- 1. RabbitMQ driver defaults ---------------------------------------------------

def test_rabbit_options_patched_exist_with_their_types() -> None:
    opts = {opt.name: opt for opt in impl_rabbit.rabbit_opts}
    assert isinstance(opts["heartbeat_timeout_threshold"], cfg.IntOpt)
    assert isinstance(opts["direct_mandatory_flag"], cfg.BoolOpt)


def test_messaging_defaults_take_effect_through_config_load() -> None:
    config.load([], conf=cfg.ConfigOpts())
    opts = {opt.name: opt for opt in impl_rabbit.rabbit_opts}
    assert opts["heartbeat_timeout_threshold"].default == compat.RABBIT_HEARTBEAT_TIMEOUT == 10
    assert opts["direct_mandatory_flag"].default is False


# -- 2. AMQP consumers' first wait ----------------------------------------------------

#: The upstream code that reads ACK_REQUEUE_EVERY_SECONDS_MIN (oslo.messaging 18.3.1).
FIRST_WAIT_READERS = {
    "MessageOperationsHandler._process_in_background": "dd812b938e803e3b",
    "AMQPListener.__init__": "3e80b927652cb170",
    "AMQPListener.poll": "58e2a11b4a994b18",
    "ReplyWaiter.poll": "177b6b4b3832aba3",
}


def test_first_wait_constant_is_read_where_and_how_it_was() -> None:
    # Read as a module global at each use (not captured at import time), by
    # the same code as when the patch was written.
    assert amqpdriver.ACK_REQUEUE_EVERY_SECONDS_MIN in (0.001, compat.FIRST_WAIT_AFTER_A_MESSAGE)
    assert _readers(amqpdriver, "ACK_REQUEUE_EVERY_SECONDS_MIN") == FIRST_WAIT_READERS


def test_amqp_first_wait_sets_the_constant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(amqpdriver, "ACK_REQUEUE_EVERY_SECONDS_MIN", 0.001)
    compat.amqp_first_wait()
    assert amqpdriver.ACK_REQUEUE_EVERY_SECONDS_MIN == compat.FIRST_WAIT_AFTER_A_MESSAGE


# -- 3. publisher confirms ---------------------------------------------------------------

#: oslo.messaging asks kombu for confirm mode here; kombu hands its
#: transport options to ``Transport.Connection`` here (pinned sources).
RABBIT_CONNECTION_INIT = "bced4c7e5777f056"
KOMBU_ESTABLISH_CONNECTION = "cb508d5533b9ec4d"


def test_confirm_mode_still_reaches_the_connection_class_as_patched() -> None:
    assert "'confirm_publish': True" in inspect.getsource(impl_rabbit.Connection.__init__)
    assert _source_hash(impl_rabbit.Connection.__init__) == RABBIT_CONNECTION_INIT
    assert _source_hash(pyamqp.Transport.establish_connection) == KOMBU_ESTABLISH_CONNECTION
    assert issubclass(compat.KOMBU_CONNECTION, amqp.Connection)
    assert "confirm_publish" in inspect.signature(amqp.Connection.__init__).parameters


@pytest.fixture
def restore_kombu() -> Iterator[None]:
    yield
    compat.publisher_confirms(True)


def test_publisher_confirms_switches_the_connection_class(restore_kombu: None) -> None:
    compat.publisher_confirms(False)
    assert pyamqp.Transport.Connection is compat.UnconfirmedConnection
    # Built (not connected) the way kombu builds it: confirm mode asked for.
    unconfirmed = pyamqp.Transport.Connection(host="127.0.0.1:1", confirm_publish=True)
    assert unconfirmed.confirm_publish is False
    compat.publisher_confirms(True)
    assert pyamqp.Transport.Connection is compat.KOMBU_CONNECTION
    assert pyamqp.Transport.Connection(host="127.0.0.1:1", confirm_publish=True).confirm_publish


# -- 4. requests delivered after an RPC server's stop --------------------------------

#: The consumer callback that acknowledges, the stop that sets ``_shutdown``,
#: the adapter holding ``_poll_style_listener``, the server creating
#: ``listener`` at start (oslo.messaging 18.3.1).
LISTENER_PINS = {
    amqpdriver.AMQPListener.__call__: "0004deb2046f6f05",
    amqpdriver.AMQPListener.stop: "d9ccae49fa56927e",
    driver_base.PollStyleListenerAdapter.__init__: "0e02caa448de9ccf",
    messaging_server.MessageHandlingServer.start: "f0bd72f0a3a2eda2",
}


def test_listener_layout_is_the_one_patched() -> None:
    assert {function.__qualname__: _source_hash(function) for function in LISTENER_PINS} == {
        function.__qualname__: pin for function, pin in LISTENER_PINS.items()}


def test_deliveries_after_stop_are_left_unacknowledged() -> None:
    class Listener(amqpdriver.AMQPListener):
        def __init__(self) -> None:  # no broker: only the callback is exercised
            self._shutdown = threading.Event()
            self.received: list[Any] = []

    listener = Listener()
    server = types.SimpleNamespace(listener=types.SimpleNamespace(_poll_style_listener=listener))
    compat.leave_late_deliveries_unacked(server)
    assert isinstance(listener, amqpdriver.AMQPListener)
    listener._shutdown.set()
    # Once stopped the callback returns before oslo's own, which would ack.
    assert listener("late request") is None
