"""The official openai Python SDK streams a chat completion through an openai.toml-style route (sse re-framed,
`[DONE]` kept) over a mock OpenAI-compatible upstream, to the end, and reassembles the exact text.

Also checked: the request reached the upstream unchanged (path without the /openai prefix, the Authorization header,
`"stream": true`) with ssegate's `x-request-id`; the SDK sees the upstream's own request id and rate-limit headers
(ssegate keeps the upstream's end-to-end headers on a converted stream); and the raw stream as any SSE client sees
it ends with `data: [DONE]`.
"""

from __future__ import annotations

import json
import time

import httpx
import openai
from httpx_sse import connect_sse

from harness import Gateway, check, time_limit
from mock_upstream import OPENAI_HEADERS, OPENAI_TEXT, OPENAI_TOKENS, OPENAI_USAGE, MockServer


def tokens(admin: str) -> dict[str, float]:
    """ssegate_tokens_total of route openai, by kind."""
    text = httpx.get(f"http://{admin}/metrics", timeout=5).text
    out = {}
    for line in text.splitlines():
        if line.startswith('ssegate_tokens_total{') and 'route="openai"' in line:
            kind = line.split('kind="')[1].split('"')[0]
            out[kind] = float(line.rsplit(" ", 1)[1])
    return out


def main() -> None:
    mock = MockServer().start()
    with time_limit(55), Gateway("openai.toml", upstream=mock.url) as gw:
        client = openai.OpenAI(base_url=gw.base + "/openai/v1", api_key="sk-test-key", max_retries=0, timeout=30)

        stream = client.chat.completions.create(
            model="mock-4o", stream=True, messages=[{"role": "user", "content": "Say hello"}],
            stream_options={"include_usage": True})
        deltas, finish, ids, usage = [], None, set(), None
        for chunk in stream:
            ids.add(chunk.id)
            check(chunk.object == "chat.completion.chunk", f"unexpected object {chunk.object!r}")
            if chunk.usage is not None:
                usage = chunk.usage
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            if choice.delta.content:
                deltas.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
        text = "".join(deltas)
        check(text == OPENAI_TEXT, f"reassembled text differs:\n  got:      {text!r}\n  expected: {OPENAI_TEXT!r}")
        check(deltas == OPENAI_TOKENS, f"token sequence differs: {deltas!r}")
        check(finish == "stop", f"finish_reason {finish!r}, expected 'stop'")
        check(ids == {"chatcmpl-mock"}, f"chunk ids {ids!r}")
        # provider = "openai": the usage the SDK read is the gateway's ssegate_tokens_total (counted at stream end).
        check(usage is not None and usage.prompt_tokens == OPENAI_USAGE["prompt_tokens"]
              and usage.completion_tokens == OPENAI_USAGE["completion_tokens"], f"SDK usage {usage!r}")
        want = {"input": float(usage.prompt_tokens), "output": float(usage.completion_tokens)}
        deadline = time.monotonic() + 5
        while tokens(gw.admin) != want and time.monotonic() < deadline:
            time.sleep(0.05)
        check(tokens(gw.admin) == want, f"ssegate_tokens_total {tokens(gw.admin)!r}, expected {want!r}")
        # The upstream's request id and rate-limit headers reach the SDK through the converted stream.
        headers = stream.response.headers
        for name, value in OPENAI_HEADERS:
            check(headers.get(name) == value, f"{name}: {headers.get(name)!r}, expected the upstream's {value!r}")

        reqs = mock.requests_to("/v1/chat/completions")
        check(len(reqs) == 1, f"{len(reqs)} upstream requests, expected 1 (a retry or a lost request?)")
        req = reqs[0]
        check(req["method"] == "POST", f"upstream saw {req['method']}")
        check(req["headers"].get("authorization") == "Bearer sk-test-key", "Authorization not forwarded")
        rid = req["headers"].get("x-request-id") or ""
        check(len(rid) == 32 and all(c in "0123456789abcdef" for c in rid), f"upstream x-request-id {rid!r}")

        # `with_raw_response`: the SDK's own accessor for the request id.
        raw = client.chat.completions.with_raw_response.create(
            model="mock-4o", stream=True, messages=[{"role": "user", "content": "again"}])
        check(raw.request_id == "req_mock_openai_1", f"SDK request_id {raw.request_id!r}")
        for _ in raw.parse():
            pass
        body = json.loads(req["body"])
        check(body.get("stream") is True and body.get("model") == "mock-4o", f"upstream got body {body!r}")

        # The same route with a plain SSE reader: the `[DONE]` sentinel is forwarded as the last event.
        with httpx.Client(timeout=30) as http, connect_sse(
                http, "POST", gw.base + "/openai/v1/chat/completions",
                json={"model": "mock-4o", "stream": True, "messages": []}) as source:
            check(source.response.headers["content-type"].startswith("text/event-stream"),
                  f"content-type {source.response.headers['content-type']!r}")
            datas = [sse.data for sse in source.iter_sse()]
        check(datas and datas[-1] == "[DONE]", f"last event {datas[-1:]!r}, expected [DONE]")
        raw_text = "".join(json.loads(d)["choices"][0]["delta"].get("content") or "" for d in datas[:-1])
        check(raw_text == OPENAI_TEXT, f"raw SSE text differs: {raw_text!r}")

    mock.shutdown()
    print(f"ok: openai SDK {openai.__version__}: {len(deltas)} deltas reassembled, finish_reason=stop, [DONE] kept, "
          f"usage = ssegate_tokens_total ({OPENAI_USAGE['prompt_tokens']} in, {OPENAI_USAGE['completion_tokens']} out)")


if __name__ == "__main__":
    main()
