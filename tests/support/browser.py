"""Headless Chromium driven over the DevTools protocol (CDP), for the page test.

Debian's chromium, started with --remote-debugging-port, and a small synchronous CDP client on
the `websockets` package (already installed with dagster-webserver): no browser download, no
driver binary.
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import itertools
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

from support.processes import Process, free_port, wait_until

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
    "--disable-dev-shm-usage", "--remote-debugging-address=127.0.0.1",
]


def chromium_available() -> bool:
    return Path(CHROMIUM).exists() or shutil.which("chromium") is not None


class CdpSession:
    """One websocket to a DevTools target: send commands, keep the events seen meanwhile."""

    def __init__(self, ws_url: str) -> None:
        options: dict[str, Any] = {"max_size": 64 * 2**20, "open_timeout": 30}
        if "legacy" in inspect.signature(connect).parameters:
            options["legacy"] = True  # a plain connection, closed by close()
        if "proxy" in inspect.signature(connect).parameters:
            options["proxy"] = None  # never through an HTTP proxy from the environment
        self._ws = connect(ws_url, **options)
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, timeout: float = 60.0, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        self._ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self._ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def close(self) -> None:
        self._ws.close()


class Browser:
    """A headless Chromium process with one page."""

    def __init__(self, workdir: Path) -> None:
        self.downloads = workdir / "downloads"
        self.downloads.mkdir(parents=True, exist_ok=True)
        port = free_port()
        # its scratch folders (org.chromium.*) hold a Unix socket, whose path may not exceed
        # 107 bytes: a short folder of its own, not the test's (deep under pytest's basetemp)
        self.scratch = Path(tempfile.mkdtemp(prefix="chromium-"))
        self.process = Process(
            "chromium",
            [CHROMIUM, *FLAGS, f"--remote-debugging-port={port}",
             f"--user-data-dir={workdir / 'profile'}", "about:blank"],
            env={"HOME": str(workdir), "TMPDIR": str(self.scratch), "PATH": "/usr/bin:/bin"},
            cwd=workdir,
            log_dir=workdir,
        )
        self._sessions: list[CdpSession] = []
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until("chromium's DevTools endpoint",
                       lambda: httpx.get(f"{base}/json/version", timeout=5).status_code == 200,
                       timeout=60, processes=[self.process])
            browser_ws = httpx.get(f"{base}/json/version", timeout=5).json()["webSocketDebuggerUrl"]
            pages = [t for t in httpx.get(f"{base}/json/list", timeout=5).json()
                     if t["type"] == "page"]
            self.browser = self._open(browser_ws)
            self.browser.send("Browser.setDownloadBehavior", behavior="allow",
                              downloadPath=str(self.downloads))
            self.page = self._open(pages[0]["webSocketDebuggerUrl"])
            self.page.send("Runtime.enable")
            self.page.send("Page.enable")
        except BaseException:
            self.close()
            raise

    def _open(self, ws_url: str) -> CdpSession:
        session = CdpSession(ws_url)
        self._sessions.append(session)
        return session

    def goto(self, url: str) -> None:
        self.page.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", timeout=30)

    def js(self, expression: str) -> Any:
        """Evaluate an expression in the page (awaiting promises) and return its value."""
        result = self.page.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"page never satisfied: {expression}")
            time.sleep(0.25)

    def set_viewport(self, width: int, height: int) -> None:
        """The page's window size in CSS pixels (headless Chromium's default is 800x600)."""
        self.page.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                       deviceScaleFactor=1, mobile=False)

    def screenshot(self, path: Path) -> None:
        data = self.page.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(data["data"]))

    def exceptions(self) -> list[str]:
        """Uncaught JavaScript errors seen so far."""
        return [
            e["params"]["exceptionDetails"].get("text", "")
            + str(e["params"]["exceptionDetails"].get("exception", {}).get("description", ""))
            for e in self.page.events
            if e["method"] == "Runtime.exceptionThrown"
        ]

    def close(self) -> None:
        for session in self._sessions:
            with contextlib.suppress(Exception):
                session.close()
        self.process.stop(grace=5)
        shutil.rmtree(self.scratch, ignore_errors=True)
