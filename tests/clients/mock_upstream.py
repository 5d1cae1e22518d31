"""Mock upstreams for the real-client tests: Python standard library only, 127.0.0.1, port 0.

One server answers three shapes, each streamed with HTTP/1.1 chunked encoding, a short gap between messages,
one pause longer than the test routes' heartbeat_interval (so clients also see `: keepalive` comments), some
messages split across two chunks (one of them in the middle of a UTF-8 character):

- ``POST /v1/chat/completions``: OpenAI-compatible. With ``"stream": true``, ``data: {chat.completion.chunk}``
  events ending with ``data: [DONE]``; without, one ``chat.completion`` JSON answer.
- ``POST|GET /api/chat``: Ollama-shaped NDJSON, the last object with ``"done": true``. ``GET /api/tags``: plain JSON. ``GET /api/broken``: two messages, then the connection is cut.
- ``GET /events``: SSE with ``id:`` 1..N (CRLF and LF line ends, a multi-line ``data``, an upstream comment), then
  ``event: end``.

Every request is recorded in ``server.requests`` (method, path, headers, body) so tests can check what reached the
upstream. ``python mock_upstream.py`` runs it alone and prints its address.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The answer of the OpenAI mock: a multi-byte character split across chunks, an emoji, punctuation tokens.
OPENAI_TOKENS = ["Hello", ",", " wörld", "!", " A", " chunk", " is", " not", " a", " message", " —", " it",
                 " is", " half", " of", " one", " 🚀", "."]
OPENAI_TEXT = "".join(OPENAI_TOKENS)
# The Anthropic mock streams the same tokens; its usage (message_start input, message_delta output).
ANTHROPIC_USAGE = {"input_tokens": 12, "output_tokens": len(OPENAI_TOKENS)}
OPENAI_USAGE = {"prompt_tokens": 9, "completion_tokens": len(OPENAI_TOKENS), "total_tokens": 9 + len(OPENAI_TOKENS)}
# Response headers of the mock's OpenAI stream, like OpenAI's own: its request id (the SDK's `_request_id`) and
# rate-limit headers. ssegate keeps them on the converted stream.
OPENAI_HEADERS = (("x-request-id", "req_mock_openai_1"), ("x-ratelimit-remaining-requests", "59"))

OLLAMA_TOKENS = ["Why", " is", " the", " sky", " blue", "?", " Rayleigh", " scattering", " — ", "shorter",
                 " wavelengths", " scatter", " more", " (", "λ⁻⁴", ")", "."]
OLLAMA_TEXT = "".join(OLLAMA_TOKENS)

SSE_EVENT_COUNT = 24
SSE_MULTILINE_ID = 9  # this event's JSON data is spread over two `data:` lines
RESUME_EVENT_COUNT = 40  # GET/POST /resume: `{"seq": i}` every RESUME_GAP s, after `retry: 300`
RESUME_GAP = 0.05

GAP = 0.02     # between messages
PAUSE = 1.2    # once per stream, after PAUSE_AFTER messages; the test routes use heartbeat_interval = "300ms"
PAUSE_AFTER = 5


class MockServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> "MockServer":
        threading.Thread(target=self.serve_forever, name="mock-upstream", daemon=True).start()
        return self

    def handle_error(self, request, client_address) -> None:
        # A client (the gateway) that goes away mid-stream is expected in some tests: no traceback for that.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)

    def requests_to(self, path: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["path"].split("?")[0] == path]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: MockServer

    def log_message(self, fmt: str, *args) -> None:  # keep test output readable
        pass

    # --- plumbing -------------------------------------------------------------------------------------------

    def _record(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.server.lock:
            self.server.requests.append({
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
            })
        return body

    def _start_chunked(self, content_type: str, extra: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        for name, value in extra:
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _message(self, data: bytes, i: int, split: bool = False) -> None:
        """Writes one message, in two chunks when `split`, then waits before the next one."""
        if split:
            cut = len(data) // 2
            self._chunk(data[:cut])
            time.sleep(0.05)
            self._chunk(data[cut:])
        else:
            self._chunk(data)
        time.sleep(PAUSE if i + 1 == PAUSE_AFTER else GAP)

    def _end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _json(self, status: int, obj: object) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    # --- routes ---------------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._record()
        path = self.path.split("?")[0]
        if path == "/events":
            self._sse_with_ids()
        elif path == "/resume":
            self._resumable()
        elif path == "/api/chat":
            self._ollama_chat()
        elif path == "/api/tags":
            self._json(200, {"models": [{"name": "mock:latest", "size": 1}]})
        elif path == "/api/broken":
            self._broken()
        else:
            self._json(404, {"error": f"no such path {path}"})

    def do_POST(self) -> None:
        body = self._record()
        path = self.path.split("?")[0]
        if path == "/resume":
            self._resumable()
            return
        if path == "/v1/chat/completions":
            req = json.loads(body or b"{}")
            if req.get("stream"):
                usage = bool((req.get("stream_options") or {}).get("include_usage"))
                self._openai_stream(req.get("model", "mock"), usage)
            else:
                self._json(200, {
                    "id": "chatcmpl-mock", "object": "chat.completion", "created": 1700000000,
                    "model": req.get("model", "mock"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": OPENAI_TEXT}}],
                })
        elif path == "/api/chat":
            self._ollama_chat()
        elif path == "/v1/messages":
            req = json.loads(body or b"{}")
            self._anthropic_stream(req.get("model", "mock"))
        else:
            self._json(404, {"error": f"no such path {path}"})

    def _anthropic_stream(self, model: str) -> None:
        """Anthropic Messages streaming (``POST /v1/messages``), the documented event sequence."""
        self._start_chunked("text/event-stream; charset=utf-8", (("request-id", "req_mock_anthropic_1"),))

        def event(name: str, obj: dict) -> bytes:
            return f"event: {name}\ndata: ".encode() + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"

        msg = {"id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": [],
               "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": ANTHROPIC_USAGE["input_tokens"], "output_tokens": 1}}
        self._message(event("message_start", {"type": "message_start", "message": msg}), -1)
        self._message(event("content_block_start", {"type": "content_block_start", "index": 0,
                                                    "content_block": {"type": "text", "text": ""}}), -1)
        self._message(event("ping", {"type": "ping"}), -1)
        for i, tok in enumerate(OPENAI_TOKENS):
            delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": tok}}
            self._message(event("content_block_delta", delta), i, split=(i % 3 == 2 or "ö" in tok))
        self._message(event("content_block_stop", {"type": "content_block_stop", "index": 0}), -1)
        self._message(event("message_delta", {"type": "message_delta",
                                              "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                              "usage": {"output_tokens": ANTHROPIC_USAGE["output_tokens"]}}), -1)
        self._message(event("message_stop", {"type": "message_stop"}), -1)
        self._end_chunked()

    def _openai_stream(self, model: str, include_usage: bool = False) -> None:
        """With ``stream_options.include_usage``: ``"usage": null`` in every chunk, then a last chunk with no
        choices and the usage (``OPENAI_USAGE``), before ``[DONE]``, as OpenAI sends it."""
        self._start_chunked("text/event-stream; charset=utf-8", OPENAI_HEADERS)

        def chunk(delta: dict, finish: str | None) -> bytes:
            obj = {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1700000000,
                   "model": model, "system_fingerprint": "fp_mock",
                   "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            if include_usage:
                obj["usage"] = None
            return b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"

        self._message(chunk({"role": "assistant", "content": ""}, None), -1)
        for i, tok in enumerate(OPENAI_TOKENS):
            # Every third message is split in two chunks; " wörld" and " 🚀" are cut inside a UTF-8 character.
            self._message(chunk({"content": tok}, None), i, split=(i % 3 == 2 or "ö" in tok or "🚀" in tok))
        self._message(chunk({}, "stop"), -1)
        if include_usage:
            last = {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1700000000,
                    "model": model, "system_fingerprint": "fp_mock", "choices": [], "usage": OPENAI_USAGE}
            self._message(b"data: " + json.dumps(last).encode() + b"\n\n", -1)
        self._message(b"data: [DONE]\n\n", -1)
        self._end_chunked()

    def _ollama_chat(self) -> None:
        self._start_chunked("application/x-ndjson")
        for i, tok in enumerate(OLLAMA_TOKENS):
            msg = {"model": "mock", "created_at": "2026-01-01T00:00:00Z",
                   "message": {"role": "assistant", "content": tok}, "done": False}
            self._message(json.dumps(msg, ensure_ascii=False).encode() + b"\n", i, split=(i % 4 == 3))
        last = {"model": "mock", "created_at": "2026-01-01T00:00:01Z",
                "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
                "eval_count": len(OLLAMA_TOKENS)}
        self._message(json.dumps(last).encode() + b"\n", -1)
        self._end_chunked()

    def _broken(self) -> None:
        """Two Ollama messages, then the connection closes in the middle of the body (no last chunk)."""
        self._start_chunked("application/x-ndjson")
        for i, tok in enumerate(OLLAMA_TOKENS[:2]):
            msg = {"model": "mock", "message": {"role": "assistant", "content": tok}, "done": False}
            self._chunk(json.dumps(msg).encode() + b"\n")
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def _sse_with_ids(self) -> None:
        self._start_chunked("text/event-stream")
        self._chunk(b": upstream comment, not an event\n\n")
        for seq in range(1, SSE_EVENT_COUNT + 1):
            if seq == SSE_MULTILINE_ID:
                ev = b'id: %d\ndata: {"seq": %d,\ndata:  "multiline": true}\n\n' % (seq, seq)
            elif seq % 2 == 0:
                ev = b'id: %d\r\ndata: {"seq": %d, "text": "\xc3\xa9v\xc3\xa9nement %d"}\r\n\r\n' % (seq, seq, seq)
            else:
                ev = b'id: %d\ndata: {"seq":%d}\n\n' % (seq, seq)
            self._message(ev, seq - 1, split=(seq % 5 == 0))
        self._message(b'event: end\ndata: {"count": %d}\n\n' % SSE_EVENT_COUNT, -1)
        self._end_chunked()

    def _resumable(self) -> None:
        """For test_resume.py: `retry: 300` (clients reconnect quickly), then RESUME_EVENT_COUNT events with
        upstream ids (the gateway replaces them), one every RESUME_GAP seconds. Written to the end even when
        the gateway's client left (the gateway detaches and records them)."""
        self._start_chunked("text/event-stream")
        self._chunk(b"retry: 300\n\n")
        for seq in range(1, RESUME_EVENT_COUNT + 1):
            self._chunk(b'id: up-%d\ndata: {"seq": %d}\n\n' % (seq, seq))
            time.sleep(RESUME_GAP)
        self._end_chunked()


if __name__ == "__main__":
    server = MockServer()
    print(f"mock upstream on {server.url}", flush=True)
    server.serve_forever()
