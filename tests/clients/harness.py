"""Shared plumbing of the real-client tests: the ssegate binary on free ports, cleanup, time limits.

- ``Gateway(template, upstream=URL)``: renders a config template of this directory (``${LISTEN}``, ``${ADMIN}``,
  ``${UPSTREAM}``), starts ``ssegate run --config`` on free 127.0.0.1 ports and waits for the admin ``/readyz``.
- ``Demo()``: starts ``ssegate demo`` on free ports and reads the mock upstream's address from its banner.
- ``time_limit(seconds)``: the whole test fails (and cleans up) when it takes longer.

Both are context managers that stop the process (SIGTERM, then SIGKILL) on the way out, whatever happened.
SIGTERM/SIGINT to the test process also run that cleanup. The binary is ``$SSEGATE_BIN`` or
``target/debug/ssegate``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def binary() -> str:
    path = os.environ.get("SSEGATE_BIN") or str(ROOT / "target" / "debug" / "ssegate")
    if not os.access(path, os.X_OK):
        sys.exit(f"ssegate binary not found at {path}: run `cargo build -p ssegate` first (or set SSEGATE_BIN)")
    return path


def free_port() -> int:
    """A port that was free a moment ago (bind 127.0.0.1:0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sigterm(signum, _frame):
    raise SystemExit(f"terminated by signal {signum}")


signal.signal(signal.SIGTERM, _sigterm)


class TimeLimit(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: int):
    def expired(_signum, _frame):
        raise TimeLimit(f"test took longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class _Process:
    """An ssegate process with its log in a temporary directory."""

    def __init__(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="ssegate-clients-")
        self.log_path = Path(self.tmp.name) / "ssegate.log"
        self.proc: subprocess.Popen | None = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _spawn(self, args: list[str]) -> None:
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen([binary(), *args], stdout=self.log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

    def _wait_ready(self, timeout: float = 20.0) -> bool:
        """True once /readyz says 200; False if the process exited first (e.g. a port was taken)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                status, _ = http_get(f"http://{self.admin}/readyz", timeout=1.0)
                if status == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"ssegate not ready within {timeout} s; log:\n{self.log()}")

    def _start(self, args_for: callable) -> None:
        for _attempt in range(3):  # a free port can be taken between our probe and ssegate's bind: retry
            self.port, self.admin_port = free_port(), free_port()
            self.listen, self.admin = f"127.0.0.1:{self.port}", f"127.0.0.1:{self.admin_port}"
            self._spawn(args_for(self))
            if self._wait_ready():
                return
            self.log_file.close()
        raise RuntimeError(f"ssegate exited before it was ready (exit {self.proc.returncode}); log:\n{self.log()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "log_file"):
            self.log_file.close()

    @property
    def base(self) -> str:
        return f"http://{self.listen}"

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stop()
        if exc_type is not None and exc_type is not KeyboardInterrupt:
            print(f"--- ssegate log ---\n{self.log()}--- end of ssegate log ---", file=sys.stderr)
        self.tmp.cleanup()


class Gateway(_Process):
    """``ssegate run`` with a config rendered from ``tests/clients/<template>``."""

    def __init__(self, template: str, upstream: str) -> None:
        super().__init__()
        self.template = (HERE / template).read_text()
        self.upstream = upstream

    def variables(self) -> dict[str, str]:
        """Template variables beyond LISTEN, ADMIN, UPSTREAM and TMP (called once the ports are chosen)."""
        return {}

    def __enter__(self) -> "Gateway":
        def args(p: "Gateway") -> list[str]:
            config = string.Template(self.template).substitute(
                LISTEN=p.listen, ADMIN=p.admin, UPSTREAM=p.upstream, TMP=p.tmp.name, **p.variables())
            self.config_path = Path(p.tmp.name) / "ssegate.toml"
            self.config_path.write_text(config)
            return ["run", "--config", str(self.config_path)]

        try:
            self._start(args)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self


class Demo(_Process):
    """``ssegate demo``; ``mock_url`` is the built-in mock upstream (read from the banner)."""

    def __enter__(self) -> "Demo":
        try:
            self._start(lambda p: ["demo", "--listen", p.listen, "--admin", p.admin])
            deadline = time.monotonic() + 10
            while not (m := re.search(r"upstream:\s+(http://127\.0\.0\.1:\d+)", self.log())):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"`ssegate demo` printed no upstream address; log:\n{self.log()}")
                time.sleep(0.05)
            self.mock_url = m.group(1)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self


def check(cond: bool, message: str) -> None:
    """An assertion that survives `python -O`."""
    if not cond:
        raise AssertionError(message)
