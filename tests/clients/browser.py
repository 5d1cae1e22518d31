"""Headless Chromium for tests: open a URL, wait until a JavaScript condition holds, return a JSON result.

Uses the Debian packages ``chromium`` (/usr/bin/chromium) and ``chromium-driver`` (/usr/bin/chromedriver) through
selenium. The driver path is given explicitly, so Selenium Manager is never run and nothing is downloaded
(``SE_OFFLINE=true`` is set as well).

Python::

    from browser import Browser, StaticSite

    with Browser() as b:
        r = b.run("http://127.0.0.1:8080/",
                  until="document.getElementById('es-state').dataset.state !== 'streaming'",
                  result="({state: document.getElementById('es-state').textContent})",
                  timeout=30)
    r == {"ok": True, "value": {...}, "elapsed": 6.9, "url": "...", "console": [...], "error": None}

- ``until`` and ``result`` are JavaScript *expressions* evaluated in the page (wrapped in ``return (...)``);
  ``result`` must give something JSON-serialisable. ``until`` is polled every ``poll`` seconds (default 0.1).
- ``ok`` is False when the condition did not hold within ``timeout`` seconds (``error`` says so, ``value`` is still
  evaluated for diagnostics) or when the page threw while evaluating (``error`` has the message).
- ``console`` holds the page's console messages and uncaught errors (level, message) — CORS failures show up there.
- One ``Browser`` can ``run`` several pages one after another (each ``run`` navigates the same tab).

``StaticSite({"/": ("text/html", html_bytes)})`` serves fixed responses on a fresh origin
``http://127.0.0.1:<port 0>`` (a different port is a different origin): put a page there that streams from a gateway on
another origin to test CORS. The dict is read on every request, so it can be filled in after the site started (the
gateway's config needs ``site.origin`` for ``allow_origins``; the page needs the gateway's URL)::

    pages = {}
    with StaticSite(pages) as site:
        ...start the gateway with cors = { allow_origins = [site.origin] }...
        pages["/"] = ("text/html; charset=utf-8", page_html_that_uses(gateway_url))
        with Browser() as b:
            r = b.run(site.origin + "/", until="window.done === true", result="window.results")

``StaticSite(..., headers={...})`` adds response headers to every answer; ``/favicon.ico`` is 204 unless given.

Command line (prints the result as JSON; exit status 0 when ok)::

    python browser.py URL --until JS [--result JS] [--timeout 30]
    python browser.py --serve page.html --until JS ...   # serves page.html on a fresh origin and opens it
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")

os.environ.setdefault("SE_OFFLINE", "true")  # belt and braces: Selenium Manager must never download anything
for var in ("NO_PROXY", "no_proxy"):  # selenium talks to chromedriver over HTTP on localhost
    os.environ[var] = ",".join(filter(None, [os.environ.get(var), "127.0.0.1", "localhost"]))

CHROME_ARGS = [
    "--headless=new",
    "--no-sandbox",             # required as root (CI runs as root)
    "--disable-gpu",
    "--disable-dev-shm-usage",  # small /dev/shm in containers
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--no-proxy-server",
    "--window-size=1280,900",
]


class Browser:
    def __init__(self, extra_args: list[str] | None = None, page_load_timeout: float = 20) -> None:
        for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
            if not os.access(path, os.X_OK):
                raise RuntimeError(f"{path} not found: install the Debian package {package} (scripts/setup.sh does)")
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="ssegate-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for arg in [*CHROME_ARGS, f"--user-data-dir={self.profile}", *(extra_args or [])]:
            opts.add_argument(arg)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(executable_path=CHROMEDRIVER, log_output=os.path.join(self.profile, "chromedriver.log"))
        try:
            self.driver = webdriver.Chrome(service=service, options=opts)
        except BaseException:
            shutil.rmtree(self.profile, ignore_errors=True)
            raise
        self.driver.set_page_load_timeout(page_load_timeout)
        self.driver.set_script_timeout(10)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    def console(self) -> list[dict]:
        try:
            return [{"level": e.get("level"), "message": e.get("message")} for e in self.driver.get_log("browser")]
        except Exception:  # noqa: BLE001 - diagnostics only
            return []

    def run(self, url: str, until: str, result: str = "null", timeout: float = 30, poll: float = 0.1) -> dict:
        start = time.monotonic()
        out = {"ok": False, "value": None, "elapsed": 0.0, "url": url, "console": [], "error": None}
        try:
            self.driver.get(url)
            deadline = start + timeout
            while True:
                if self.driver.execute_script(f"return Boolean({until});"):
                    out["ok"] = True
                    break
                if time.monotonic() > deadline:
                    out["error"] = f"condition not true within {timeout} s: {until}"
                    break
                time.sleep(poll)
        except Exception as e:  # noqa: BLE001 - reported in the result
            out["error"] = f"{type(e).__name__}: {e}".strip()
        try:
            out["value"] = self.driver.execute_script(f"return ({result});")
        except Exception as e:  # noqa: BLE001
            out["ok"] = False
            out["error"] = out["error"] or f"result expression failed: {type(e).__name__}: {e}"
        out["elapsed"] = round(time.monotonic() - start, 3)
        out["console"] = self.console()
        return out


class StaticSite:
    """Fixed responses on http://127.0.0.1:<free port>: ``{path: (content_type, body_bytes)}``."""

    def __init__(self, pages: dict[str, tuple[str, bytes]], headers: dict[str, str] | None = None) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                page = pages.get(path)
                if page is None and path == "/favicon.ico":  # keep the console free of 404 noise
                    self.send_response(204)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                ctype, body = page if page else ("text/plain", b"not found")
                self.send_response(200 if page else 404)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="static-site", daemon=True)

    def __enter__(self) -> "StaticSite":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("url", nargs="?", help="page to open (or use --serve)")
    ap.add_argument("--serve", metavar="HTML_FILE", help="serve this file at / on a fresh origin and open it")
    ap.add_argument("--until", required=True, help="JS expression; wait until it is truthy")
    ap.add_argument("--result", default="null", help="JS expression giving the JSON result")
    ap.add_argument("--timeout", type=float, default=30)
    args = ap.parse_args()
    if bool(args.url) == bool(args.serve):
        ap.error("give exactly one of URL and --serve")
    if args.serve:
        with open(args.serve, "rb") as f:
            html = f.read()
        with StaticSite({"/": ("text/html; charset=utf-8", html)}) as site, Browser() as b:
            r = b.run(site.origin + "/", args.until, args.result, args.timeout)
    else:
        with Browser() as b:
            r = b.run(args.url, args.until, args.result, args.timeout)
    print(json.dumps(r, indent=2, ensure_ascii=False))
    return 0 if r["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
