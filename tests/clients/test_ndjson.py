"""httpx reads NDJSON output line by line (``iter_lines``): a route with ``outputs = ["sse", "ndjson"]`` in front
of a mock Ollama; ``Accept: application/x-ndjson`` gets ``application/x-ndjson`` with ``Vary: Accept``, every token
in order as its own JSON line, then the done event as an object; a stream cut by the upstream ends with an error
line. Without that Accept the same route answers SSE.
"""

from __future__ import annotations

import json

import httpx

from harness import Gateway, check, time_limit
from mock_upstream import OLLAMA_TEXT, OLLAMA_TOKENS, MockServer

NDJSON = {"Accept": "application/x-ndjson"}


def lines(http: httpx.Client, url: str) -> tuple[httpx.Response, list[dict]]:
    with http.stream("GET", url, headers=NDJSON) as resp:
        out = [json.loads(line) for line in resp.iter_lines() if line]
    return resp, out


def main() -> None:
    mock = MockServer().start()
    with time_limit(55), Gateway("ndjson.toml", upstream=mock.url) as gw, httpx.Client(timeout=30) as http:
        resp, objs = lines(http, gw.base + "/api/chat")
        check(resp.status_code == 200, f"status {resp.status_code}")
        check(resp.headers.get("content-type") == "application/x-ndjson", f"content-type {resp.headers!r}")
        check(resp.headers.get("vary") == "Accept", f"vary {resp.headers.get('vary')!r}")
        tokens = [o["message"]["content"] for o in objs[:-2]]
        check(tokens == OLLAMA_TOKENS, f"tokens differ:\n  got:      {tokens!r}\n  expected: {OLLAMA_TOKENS!r}")
        check("".join(tokens) == OLLAMA_TEXT, "text differs")
        check(objs[-2]["done"] is True, f"last upstream message {objs[-2]!r}")
        check(objs[-1] == {"event": "done", "data": "[DONE]"}, f"done event {objs[-1]!r}")

        resp, objs = lines(http, gw.base + "/api/broken")
        check(resp.headers.get("content-type") == "application/x-ndjson", f"broken: content-type {resp.headers!r}")
        check([o.get("message", {}).get("content") for o in objs[:2]] == OLLAMA_TOKENS[:2], f"broken: {objs!r}")
        err = objs[-1].get("error", {})
        check(len(objs) == 3 and err.get("type") == "upstream_reset" and err.get("status") == 502,
              f"broken: the last line is not the error: {objs!r}")
        check(bool(err.get("request_id")), f"broken: no request id in {err!r}")

        sse = http.get(gw.base + "/api/chat", headers={"Accept": "text/event-stream"})
        check(sse.headers.get("content-type", "").startswith("text/event-stream"), f"sse: {sse.headers!r}")
        check(sse.text.endswith("event: done\ndata: [DONE]\n\n"), f"sse body end {sse.text[-60:]!r}")
    mock.shutdown()
    print(f"ok: ndjson: {len(OLLAMA_TOKENS)} tokens as JSON lines + done object, Vary: Accept, an error line after a cut, SSE by Accept")


if __name__ == "__main__":
    main()
