"""HTTP/2 floods on the h2c listener and on the TLS listener (h2 by ALPN) (issue 17), written with the Python
``h2`` / ``hyperframe`` packages:

- a rapid-reset flood (CVE-2023-44487): HEADERS + RST_STREAM pairs as fast as the socket takes them;
- a CONTINUATION flood (CVE-2024-27316 family): one HEADERS without END_HEADERS, then CONTINUATION frames
  that never end the header block.

Each is bounded and counted: the gateway closes the flooding connection (GOAWAY ``ENHANCE_YOUR_CALM``, then
EOF) long before the flood is over, ``ssegate_h2_connection_errors_total{listener, reason="enhance_your_calm"}``
on ``/metrics`` goes up by exactly one for that listener (and not for the other), and the gateway stays serving —
streams open on other connections during the floods (h2 on the same listener; HTTP/1.1 over TLS during the TLS
floods) get every event, and a new connection is served afterwards. What the gateway did for the reset flood is
printed (how many of its streams reached the upstream).

The TLS listener's certificate is a self-signed one made with the ``openssl`` command for this run.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import hpack
from hyperframe.frame import ContinuationFrame, Frame, GoAwayFrame, HeadersFrame

from harness import Gateway, check, free_port, http_get, time_limit
from mock_upstream import SSE_EVENT_COUNT, MockServer

RESET_PAIRS = 20_000      # HEADERS + RST_STREAM pairs offered by the reset flood
CONTINUATION_KIB = 64 * 1024  # CONTINUATION payload offered by the other flood (64 MiB)


CONFIG = """
[server]
listen = ["${LISTEN}"]
shutdown_drain = "0s"
pid_file = "${TMP}/ssegate.pid"
upgrade_sock = "${TMP}/upgrade.sock"

[server.tls]
listen = "${TLS_LISTEN}"
cert = "${TMP}/cert.pem"
key = "${TMP}/key.pem"

[admin]
listen = "${ADMIN}"

[[route]]
name = "events"
path_prefix = "/sse"
upstream = "${UPSTREAM}"
format = "sse"
heartbeat_interval = "300ms"
"""

ENHANCE_YOUR_CALM = 11


class TlsGateway(Gateway):
    """``ssegate run`` with a plaintext and a TLS listener, and a fresh self-signed certificate."""

    def __init__(self, upstream: str) -> None:
        super().__init__("events.toml", upstream)
        self.template = CONFIG
        tmp = Path(self.tmp.name)
        self.cert = tmp / "cert.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", str(tmp / "key.pem"),
                        "-out", str(self.cert), "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True)

    def variables(self) -> dict[str, str]:
        self.tls_port = free_port()
        return {"TLS_LISTEN": f"127.0.0.1:{self.tls_port}"}

    def tls_context(self, alpn: str) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.cert))
        ctx.set_alpn_protocols([alpn])
        return ctx

    def dial(self, tls: bool) -> socket.socket:
        """A connection to the plaintext listener, or a TLS one with ALPN h2 (checked)."""
        if not tls:
            return socket.create_connection(("127.0.0.1", self.port), timeout=10)
        raw = socket.create_connection(("127.0.0.1", self.tls_port), timeout=10)
        sock = self.tls_context("h2").wrap_socket(raw, server_hostname="localhost")
        check(sock.selected_alpn_protocol() == "h2", f"ALPN chose {sock.selected_alpn_protocol()!r}, not h2")
        return sock

    def h2_errors(self) -> dict[tuple[str, str], int]:
        """``ssegate_h2_connection_errors_total`` from ``/metrics``: {(listener, reason): value}."""
        status, body = http_get(f"http://{self.admin}/metrics")
        check(status == 200, f"/metrics: {status}")
        out = {}
        for line in body.decode().splitlines():
            m = re.match(r"ssegate_h2_connection_errors_total\{([^}]*)\} (\d+)$", line)
            if m:
                labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
                out[(labels["listener"], labels["reason"])] = int(m.group(2))
        check(len(out) == 30, f"/metrics: {len(out)} series of ssegate_h2_connection_errors_total, expected 30")
        return out


def connect(dial) -> tuple[socket.socket, h2.connection.H2Connection]:
    sock = dial()
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    return sock, conn


def request_headers(port: int, path: str) -> list[tuple[str, str]]:
    return [(":method", "GET"), (":scheme", "http"), (":authority", f"127.0.0.1:{port}"), (":path", path)]


def get_stream(dial, port: int, path: str, out: dict) -> None:
    """One HTTP/2 GET read to its end; fills ``out`` with the status and the body."""
    sock, conn = connect(dial)
    conn.send_headers(1, request_headers(port, path), end_stream=True)
    sock.sendall(conn.data_to_send())
    body = bytearray()
    done = False
    while not done:
        data = sock.recv(65536)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                out["status"] = dict(ev.headers).get(":status")
            elif isinstance(ev, h2.events.DataReceived):
                body += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset, h2.events.ConnectionTerminated)):
                done = True
        sock.sendall(conn.data_to_send())
    out["body"] = bytes(body)
    sock.close()


def read_until_closed(sock: socket.socket, within: float) -> tuple[bool, int | None]:
    """Reads frames until EOF: (closed within ``within`` s, the GOAWAY error code if one came)."""
    deadline = time.monotonic() + within
    buf = bytearray()
    code = None
    sock.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return True, code
        if not data:
            return True, code
        buf += data
        while len(buf) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(buf[:9]))
            if len(buf) < 9 + length:
                break
            frame.parse_body(memoryview(buf[9:9 + length]))
            if isinstance(frame, GoAwayFrame):
                code = frame.error_code
            del buf[:9 + length]
    return False, code


def send_all_until_closed(sock: socket.socket, chunks) -> tuple[int, bool]:
    """Sends chunks until the peer stops taking them: (how many went out, whether the peer closed)."""
    sent = 0
    sock.settimeout(5)
    for chunk in chunks:
        try:
            sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError, socket.timeout, ssl.SSLError):
            return sent, True
        sent += 1
    return sent, False


def rapid_reset_flood(dial, port: int, path: str) -> tuple[int, bool, int | None]:
    sock, conn = connect(dial)
    hdrs = request_headers(port, path)

    def batches():
        sid = 1
        for _ in range(RESET_PAIRS // 100):
            for _ in range(100):
                conn.send_headers(sid, hdrs, end_stream=True)
                conn.reset_stream(sid)
                sid += 2
            yield conn.data_to_send()

    sent, broken = send_all_until_closed(sock, batches())
    closed, code = read_until_closed(sock, 10)  # a GOAWAY may still be in the receive buffer
    closed = closed or broken
    sock.close()
    return sent * 100, closed, code


def continuation_flood(dial, port: int, path: str) -> tuple[int, bool, int | None]:
    sock, conn = connect(dial)
    enc = hpack.Encoder()
    first = HeadersFrame(1, enc.encode(request_headers(port, path)), flags=["END_STREAM"])
    filler = enc.encode([("x-flood", "a" * 1000)]) * 16  # ~16 KiB of header block per frame, never ended

    def frames():
        yield first.serialize()
        for _ in range(CONTINUATION_KIB // 16):
            yield ContinuationFrame(1, filler).serialize()

    sent, broken = send_all_until_closed(sock, frames())
    closed, code = read_until_closed(sock, 10)  # a GOAWAY may still be in the receive buffer
    closed = closed or broken
    sock.close()
    return sent, closed, code


def get_http1_tls(gw: TlsGateway, path: str, out: dict) -> None:
    """One HTTP/1.1 GET over TLS (ALPN http/1.1) read to its end."""
    conn = http.client.HTTPSConnection("127.0.0.1", gw.tls_port, timeout=10, context=gw.tls_context("http/1.1"))
    conn.request("GET", path, headers={"Host": "localhost"})
    resp = conn.getresponse()
    out["status"] = str(resp.status)
    out["body"] = resp.read()
    conn.close()


def check_stream(name: str, out: dict) -> None:
    check(out.get("status") == "200", f"{name}: status {out.get('status')!r}")
    body = out.get("body", b"")
    check(body.count(b"\nid: ") + body.startswith(b"id: ") == SSE_EVENT_COUNT,
          f"{name}: {body.count(b'id: ')} ids of {SSE_EVENT_COUNT}: {body[-200:]!r}")
    check(b"event: end" in body, f"{name}: no end event")


def counted(gw: TlsGateway, before: dict, listener: str, what: str) -> dict:
    """Waits (bounded) for the flood's close to be counted; checks it was counted once, for ``listener`` only."""
    key = (listener, "enhance_your_calm")
    deadline = time.monotonic() + 5
    now = gw.h2_errors()
    while now[key] == before[key] and time.monotonic() < deadline:
        time.sleep(0.05)
        now = gw.h2_errors()
    changed = {k: now[k] - before[k] for k in now if now[k] != before[k]}
    check(changed == {key: 1}, f"{what}: ssegate_h2_connection_errors_total moved by {changed}, expected {{{key}: 1}}")
    return now


def floods(gw: TlsGateway, mock: MockServer, tls: bool, errors: dict) -> tuple[dict, str]:
    """Both floods on one listener while other connections stream; returns the counter and a summary."""
    listener = "tls" if tls else "h2c"
    port = gw.tls_port if tls else gw.port
    dial = lambda: gw.dial(tls)  # noqa: E731
    others = {"h2": {}}
    threads = [threading.Thread(target=get_stream, args=(dial, port, "/sse/events", others["h2"]), daemon=True)]
    if tls:
        others["http/1.1"] = {}
        threads.append(threading.Thread(target=get_http1_tls, args=(gw, "/sse/events", others["http/1.1"]),
                                        daemon=True))
    for t in threads:
        t.start()
    time.sleep(0.2)

    before = len(mock.requests_to("/events"))
    pairs, closed, code = rapid_reset_flood(dial, port, "/sse/events")
    check(closed, f"{listener} rapid reset: the connection stayed open after {pairs} HEADERS+RST_STREAM pairs")
    check(pairs < RESET_PAIRS, f"{listener} rapid reset: all {pairs} pairs were taken before the close")
    check(code in (None, ENHANCE_YOUR_CALM), f"{listener} rapid reset: GOAWAY {code}, expected ENHANCE_YOUR_CALM")
    errors = counted(gw, errors, listener, f"{listener} rapid reset")
    time.sleep(0.5)
    reached = len(mock.requests_to("/events")) - before

    frames, c_closed, c_code = continuation_flood(dial, port, "/sse/events")
    check(c_closed, f"{listener} continuation: the connection stayed open after {frames} frames")
    check(frames < CONTINUATION_KIB // 16, f"{listener} continuation: every frame was taken before the close")
    check(c_code in (None, ENHANCE_YOUR_CALM), f"{listener} continuation: GOAWAY {c_code}, expected ENHANCE_YOUR_CALM")
    errors = counted(gw, errors, listener, f"{listener} continuation")

    for t in threads:
        t.join(20)
        check(not t.is_alive(), f"{listener}: a stream on another connection did not finish")
    for name, out in others.items():
        check_stream(f"{listener}: the other {name} connection", out)

    after: dict = {}
    get_stream(dial, port, "/sse/events", after)
    check_stream(f"{listener}: a new connection after the floods", after)
    return errors, (f"{listener}: rapid reset closed after <= {pairs} of {RESET_PAIRS} pairs (GOAWAY {code}, "
                    f"{reached} requests reached the upstream), CONTINUATION flood after {frames} frames of ~16 KiB "
                    f"(GOAWAY {c_code}), each counted once; other connections ({', '.join(others)}) got all "
                    f"{SSE_EVENT_COUNT} events")


def main() -> None:
    mock = MockServer().start()
    with time_limit(55), TlsGateway(upstream=mock.url) as gw:
        errors = gw.h2_errors()
        check(all(v == 0 for v in errors.values()), f"h2 connection errors before any flood: {errors}")
        errors, plain = floods(gw, mock, False, errors)
        errors, tls = floods(gw, mock, True, errors)
        check(gw.proc.poll() is None, "the gateway exited")
        log = gw.log()
        check("panicked" not in log, f"panic in the log:\n{log[-2000:]}")
    mock.shutdown()
    print(f"ok: h2_floods: {plain}; {tls}")


if __name__ == "__main__":
    main()
