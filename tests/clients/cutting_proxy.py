"""A TCP proxy for the resume tests: forwards every connection to a target, counts the SSE events (`data:` lines)
it forwards towards the client, and cuts the client's connection (both sockets closed at once, mid-stream) when
that count reaches each of the given thresholds. The client then reconnects, as it would after a network drop.

    with CuttingProxy(("127.0.0.1", port), cut_at=[10, 25]) as proxy:
        url = proxy.url + "/r/resume"
        ...
        proxy.cuts  # connections cut so far
"""

from __future__ import annotations

import socket
import threading


class CuttingProxy:
    def __init__(self, target: tuple[str, int], cut_at: list[int]) -> None:
        self.target = target
        self.cut_at = sorted(cut_at)
        self.events = 0
        self.cuts = 0
        self.connections = 0
        self.lock = threading.Lock()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.closed = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "CuttingProxy":
        threading.Thread(target=self._accept, name="cutting-proxy", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.closed = True
        self.listener.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, to_client: bool) -> None:
        tail = b""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not to_client:
                    dst.sendall(data)
                    continue
                # Whole lines only (a partial one waits for the rest), so that a cut falls right after an event.
                lines = (tail + data).split(b"\n")
                tail = lines.pop()
                out = b""
                for line in lines:
                    out += line + b"\n"
                    if line.startswith(b"data:"):
                        with self.lock:
                            self.events += 1
                            cut = self.cuts < len(self.cut_at) and self.events >= self.cut_at[self.cuts]
                            if cut:
                                self.cuts += 1
                        if cut:
                            # The event's blank line too: the client has the whole event, then the cut.
                            dst.sendall(out + b"\n")
                            raise ConnectionAbortedError("cut")
                dst.sendall(out)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
