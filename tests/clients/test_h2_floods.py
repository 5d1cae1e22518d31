"""HTTP/2 floods on the h2c listener (issue 17), written with the Python ``h2`` / ``hyperframe`` packages:

- a rapid-reset flood (CVE-2023-44487): HEADERS + RST_STREAM pairs as fast as the socket takes them;
- a CONTINUATION flood (CVE-2024-27316 family): one HEADERS without END_HEADERS, then CONTINUATION frames
  that never end the header block.

Each is bounded: the gateway closes the flooding connection (GOAWAY, then EOF) long before the flood is
over, and stays serving — a stream open on another connection during the floods gets every event, and a new
connection is served afterwards. What the gateway did for the reset flood is printed (how many of its
streams reached the upstream).
"""

from __future__ import annotations

import socket
import threading
import time

import h2.config
import h2.connection
import h2.events
import hpack
from hyperframe.frame import ContinuationFrame, Frame, GoAwayFrame, HeadersFrame

from harness import Gateway, check, time_limit
from mock_upstream import SSE_EVENT_COUNT, MockServer

RESET_PAIRS = 20_000      # HEADERS + RST_STREAM pairs offered by the reset flood
CONTINUATION_KIB = 64 * 1024  # CONTINUATION payload offered by the other flood (64 MiB)


def connect(port: int) -> tuple[socket.socket, h2.connection.H2Connection]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    return sock, conn


def request_headers(port: int, path: str) -> list[tuple[str, str]]:
    return [(":method", "GET"), (":scheme", "http"), (":authority", f"127.0.0.1:{port}"), (":path", path)]


def get_stream(port: int, path: str, out: dict) -> None:
    """One h2c GET read to its end; fills ``out`` with the status and the body."""
    sock, conn = connect(port)
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
        except (ConnectionResetError, BrokenPipeError):
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
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            return sent, True
        sent += 1
    return sent, False


def rapid_reset_flood(port: int, path: str) -> tuple[int, bool, int | None]:
    sock, conn = connect(port)
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


def continuation_flood(port: int, path: str) -> tuple[int, bool, int | None]:
    sock, conn = connect(port)
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


def main() -> None:
    mock = MockServer().start()
    with time_limit(55), Gateway("events.toml", upstream=mock.url) as gw:
        # A stream on its own connection, open during both floods (~1.7 s of events with a 1.2 s pause).
        other: dict = {}
        t = threading.Thread(target=get_stream, args=(gw.port, "/sse/events", other), daemon=True)
        t.start()
        time.sleep(0.2)

        before = len(mock.requests_to("/events"))
        pairs, closed, code = rapid_reset_flood(gw.port, "/sse/events")
        check(closed, f"rapid reset: the connection stayed open after {pairs} HEADERS+RST_STREAM pairs")
        check(pairs < RESET_PAIRS, f"rapid reset: all {pairs} pairs were taken before the close")
        check(code in (None, 11), f"rapid reset: GOAWAY {code}, expected ENHANCE_YOUR_CALM (11)")
        time.sleep(0.5)
        reached = len(mock.requests_to("/events")) - before

        frames, c_closed, c_code = continuation_flood(gw.port, "/sse/events")
        check(c_closed, f"continuation: the connection stayed open after {frames} frames")
        check(frames < CONTINUATION_KIB // 16, "continuation: every frame was taken before the close")
        check(c_code in (None, 11), f"continuation: GOAWAY {c_code}, expected ENHANCE_YOUR_CALM (11)")

        t.join(20)
        check(not t.is_alive(), "the stream on another connection did not finish")
        check(other.get("status") == "200", f"other connection: status {other.get('status')!r}")
        body = other.get("body", b"")
        check(body.count(b"\nid: ") + body.startswith(b"id: ") == SSE_EVENT_COUNT,
              f"other connection: {body.count(b'id: ')} ids of {SSE_EVENT_COUNT}: {body[-200:]!r}")
        check(b"event: end" in body, "other connection: no end event")

        after: dict = {}
        get_stream(gw.port, "/sse/events", after)
        check(after.get("status") == "200" and b"event: end" in after.get("body", b""),
              f"a new connection after the floods: {after.get('status')!r}")
        check(gw.proc.poll() is None, "the gateway exited")
        log = gw.log()
        check("panicked" not in log, f"panic in the log:\n{log[-2000:]}")
    mock.shutdown()
    print(f"ok: h2_floods: rapid reset closed after <= {pairs} of {RESET_PAIRS} pairs (GOAWAY code {code}, "
          f"{reached} requests reached the upstream); CONTINUATION flood closed after {frames} frames of "
          f"~16 KiB (GOAWAY code {c_code}); the other connection got all {SSE_EVENT_COUNT} events; a new one "
          "is served")


if __name__ == "__main__":
    main()
