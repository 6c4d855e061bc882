"""Fixtures of the browser tests: headless Chromium and ``herald run`` as a process.

The browser is Debian's ``/usr/bin/chromium`` (``apt-get install chromium``;
``.ci/run`` installs it when missing), driven by Python Playwright, whose
wheel ships its driver. Playwright's own browser downloads are never used
(no ``playwright install``): the machines reach no download site. Missing
Chromium fails the tests with a message saying what to install; it never
skips them, so a CI run without a browser cannot pass silently.

``herald`` is one ``herald run`` per module (embedded mode, SQLite, free
ports) from ``herald.testing.topology``; its websocket gateway serves the
console at ``/console/`` and admits the origin of ``allowed_page`` (a second
web server serving the same console files), while ``refused_page`` is an
origin it does not admit. Screenshots go to the test's ``tmp_path`` and are
copied to ``test-output/browser/`` at the repository root (git-ignored).
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from herald.testing.topology import Service, Topology, free_port, gateway_health, tail
from herald.ws_gateway.webconsole import CONSOLE_DIR

CHROMIUM = os.environ.get("HERALD_TEST_CHROMIUM", "/usr/bin/chromium")
# Flags for a headless browser in a container with no network but loopback:
# no sandbox (root, no user namespaces), and nothing that phones home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
OUTPUT_DIR = REPO / "test-output" / "browser"


# Module scope, not session: Playwright's sync API keeps an asyncio loop
# running on the main thread while it is open, and tests of other modules
# that call asyncio.run() fail while it is.
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: the browser tests need Debian's chromium "
            "package (apt-get update && apt-get install -y chromium; .ci/run does this "
            "itself), or HERALD_TEST_CHROMIUM pointing at a Chromium binary. Do not use "
            "`playwright install`: it downloads a browser from a site this machine cannot "
            "reach.", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Herald:
    service: Service
    api_url: str
    ws_port: int

    @property
    def gateway_http(self) -> str:
        return f"http://127.0.0.1:{self.ws_port}"

    @property
    def gateway_ws(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/"


class StaticPage:
    """The console's files from a plain HTTP server: a page on another origin."""

    def __init__(self) -> None:
        handler = functools.partial(_QuietHandler, directory=str(CONSOLE_DIR))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       name=f"static-page-{self.port}")
        self.thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, gateway_ws: str) -> str:
        return f"{self.origin}/index.html?gateway={gateway_ws}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def allowed_page() -> Iterator[StaticPage]:
    page = StaticPage()
    yield page
    page.close()


@pytest.fixture(scope="module")
def refused_page() -> Iterator[StaticPage]:
    page = StaticPage()
    yield page
    page.close()


@pytest.fixture(scope="module")
def herald(tmp_path_factory: pytest.TempPathFactory, allowed_page: StaticPage) -> Iterator[Herald]:
    topology = Topology(tmp_path_factory.mktemp("browser-herald"))
    ws_port = free_port()
    try:
        service = topology.embedded(
            ws_port=ws_port, env={"OS_WS_GATEWAY__ALLOWED_ORIGINS": allowed_page.origin})
        # Ping proves the API and the worker; the gateway may listen a moment later.
        service.wait_for(lambda: bool((gateway_health(f"http://127.0.0.1:{ws_port}") or {})
                                      .get("storage_reachable")),
                         "the websocket gateway's GET /health")
        assert service.url
        yield Herald(service=service, api_url=service.url, ws_port=ws_port)
    finally:
        topology.stop_all()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    """A fresh page in its own context; uncaught page errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    new_page = context.new_page()
    errors: list[str] = []
    new_page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield new_page
    finally:
        context.close()
    assert not errors, f"uncaught errors on the page: {errors}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    herald = getattr(item, "funcargs", {}).get("herald")
    if report.failed and isinstance(herald, Herald):
        report.sections.append(("herald run log", tail(herald.service.log(), 120)))


def save_screenshot(page: object, tmp_path: Path, name: str) -> Path:
    """Full-page PNG in ``tmp_path``, copied to ``test-output/browser/``."""
    target = tmp_path / name
    page.screenshot(path=str(target), full_page=True)  # type: ignore[attr-defined]
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(target, OUTPUT_DIR / name)
    return target


def rest_post(herald: Herald, project: str, queue: str, body: object) -> None:
    """Post one message as a second, non-browser client would."""
    response = requests.post(
        f"{herald.api_url}/v2/queues/{queue}/messages",
        json={"messages": [{"body": body, "ttl": 300}]},
        headers={"Client-ID": "5b0a3f4e-2c53-4c1d-9d3e-0f9f7d7c1a11", "X-Project-ID": project},
        timeout=30)
    assert response.status_code == 201, response.text
