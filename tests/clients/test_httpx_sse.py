"""httpx-sse consumes an ollama.toml-style route (ndjson -> SSE, done event) over a mock Ollama: every token in
order, the final `"done": true` message, then `event: done` with `[DONE]`, for POST (as Ollama clients send) and
GET. Plain JSON on the `auto` route (/api/tags) passes through untouched.
"""

from __future__ import annotations

import json

import httpx
from httpx_sse import connect_sse

from harness import Gateway, check, time_limit
from mock_upstream import OLLAMA_TEXT, OLLAMA_TOKENS, MockServer


def consume(http: httpx.Client, method: str, url: str, **kw) -> None:
    with connect_sse(http, method, url, **kw) as source:
        ctype = source.response.headers.get("content-type", "")
        check(source.response.status_code == 200, f"{method}: status {source.response.status_code}")
        check(ctype.startswith("text/event-stream"), f"{method}: content-type {ctype!r}")
        events = list(source.iter_sse())
    names = [e.event for e in events]
    check(names == ["message"] * (len(OLLAMA_TOKENS) + 1) + ["done"],
          f"{method}: event names {names!r}")
    msgs = [json.loads(e.data) for e in events[:-1]]
    tokens = [m["message"]["content"] for m in msgs[:-1]]
    check(tokens == OLLAMA_TOKENS, f"{method}: tokens differ:\n  got:      {tokens!r}\n  expected: {OLLAMA_TOKENS!r}")
    check("".join(tokens) == OLLAMA_TEXT, f"{method}: text differs")
    check(all(m["done"] is False for m in msgs[:-1]), f"{method}: a message before the last has done != false")
    check(msgs[-1]["done"] is True and msgs[-1]["done_reason"] == "stop", f"{method}: last message {msgs[-1]!r}")
    check(events[-1].data == "[DONE]", f"{method}: done event data {events[-1].data!r}")


def main() -> None:
    mock = MockServer().start()
    with time_limit(55), Gateway("ollama.toml", upstream=mock.url) as gw, httpx.Client(timeout=30) as http:
        body = {"model": "mock", "messages": [{"role": "user", "content": "Why is the sky blue?"}]}
        consume(http, "POST", gw.base + "/api/chat", json=body)
        reqs = mock.requests_to("/api/chat")
        check(len(reqs) == 1 and json.loads(reqs[0]["body"]) == body, f"upstream requests {reqs!r}")
        consume(http, "GET", gw.base + "/api/chat")

        tags = http.get(gw.base + "/api/tags")
        check(tags.status_code == 200 and tags.headers["content-type"] == "application/json",
              f"/api/tags: {tags.status_code} {tags.headers.get('content-type')!r}")
        check(tags.json() == {"models": [{"name": "mock:latest", "size": 1}]}, f"/api/tags body {tags.text!r}")
    mock.shutdown()
    print(f"ok: httpx-sse: {len(OLLAMA_TOKENS)} tokens + done message + done event, POST and GET; /api/tags passed through")


if __name__ == "__main__":
    main()
