"""A headless Chromium driven through the DevTools protocol: open the report, wait until it has
drawn, read what its script says, click where a point is, and collect every console error.

Used by `evo bench lineage` (the page's load time) and by the report's tests. Chromium is
started with `--remote-debugging-port=0` and tells on stderr which port it took; the client
speaks to the page's target over one websocket (websocket-client).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from evo.errors import UsageError

LISTENING = "DevTools listening on "


class Browser:
    """One headless Chromium with one page; a context manager that ends the process."""

    def __init__(self, width: int = 1400, height: int = 1400, timeout: float = 60.0):
        import websocket  # only the report's benchmark and tests need it

        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium is None:
            raise UsageError("no chromium on PATH; install it (apt-get install chromium)")
        self.timeout = timeout
        self.scratch = Path(tempfile.mkdtemp(prefix="evo-browser-"))
        log = self.scratch / "stderr.log"
        with open(log, "w") as stderr:  # a file, not a pipe, so Chromium never blocks on it
            self.process = subprocess.Popen(
                [
                    chromium,
                    "--headless",
                    "--no-sandbox",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--enable-unsafe-swiftshader",  # WebGL on the CPU, as a GPU-less user has
                    "--remote-debugging-port=0",
                    f"--user-data-dir={self.scratch / 'profile'}",
                    f"--window-size={width},{height}",
                    "about:blank",
                ],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,  # its helper processes go with it (os.killpg)
            )
        self.socket = None
        try:
            port = self._port(log)
            url = f"http://127.0.0.1:{port}/json/list"
            with urllib.request.urlopen(url, timeout=10) as reply:
                page = next(t for t in json.load(reply) if t["type"] == "page")
            self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=timeout)
            self.ids = itertools.count(1)
            self.events: list[dict[str, Any]] = []
            for domain in ("Page", "Runtime", "Log"):
                self.send(f"{domain}.enable")
        except BaseException:
            self.close()
            raise

    def _port(self, log: Path) -> int:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            for line in log.read_text().splitlines():
                if line.startswith(LISTENING):
                    return int(line.split(":")[-1].split("/")[0])
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        raise TimeoutError("chromium did not open its DevTools port")

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One protocol command; the events that arrive meanwhile are kept."""
        ident = next(self.ids)
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        result = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str, ready: str = "window.evoRendered") -> float:
        """Load `url` and wait until `ready` has a value; returns it (the report sets it to
        performance.now() once every plot is drawn: milliseconds since navigation began)."""
        self.send("Page.navigate", url=url)
        return self.wait(ready)

    def wait(self, ready: str) -> Any:
        """Wait until the JavaScript expression `ready` has a value, and return it."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError):  # the page may be between documents
                value = self.evaluate(
                    f"(() => {{ try {{ return ({ready}) ?? null; }} catch {{ return null; }} }})()"
                )
                if value is not None:
                    return value
            time.sleep(0.05)
        raise TimeoutError(f"the page did not set {ready} within {self.timeout:.0f} s")

    def click(self, x: float, y: float) -> None:
        """A real left click at viewport pixel (x, y): move, press, release."""
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            extra = {} if kind == "mouseMoved" else {"button": "left", "clickCount": 1}
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, **extra)

    def reload(self, ready: str = "window.evoRendered") -> float:
        """Reload the page (a new document, as a live page does itself) and wait as `open`."""
        before = self.evaluate("performance.timeOrigin")
        self.send("Page.reload")
        return self.wait(f"(performance.timeOrigin > {before} && {ready}) || null")

    def errors(self) -> list[str]:
        """Every console error and uncaught exception the page has had so far."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(params["exceptionDetails"].get("text", "exception"))
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                found.append(" ".join(str(a.get("value", a)) for a in params.get("args", [])))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(params["entry"].get("text", ""))
        return found

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """End Chromium and its helper processes, and remove its profile."""
        if self.socket is not None:
            self.socket.close()
        for signal_number in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal_number)
            try:
                self.process.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                continue
        time.sleep(0.2)  # helpers that outlive the browser by a moment still write its profile
        shutil.rmtree(self.scratch, ignore_errors=True)
