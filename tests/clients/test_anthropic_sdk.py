"""The official anthropic Python SDK streams a message through a `provider = "anthropic"` route (openai.toml) over
the mock's Anthropic Messages stream: the text is reassembled exactly, and the usage the SDK reads
(`message_start` input tokens, `message_delta` output tokens) equals the gateway's `ssegate_tokens_total`.
"""

from __future__ import annotations

import time

import anthropic
import httpx

from harness import Gateway, check, time_limit
from mock_upstream import ANTHROPIC_USAGE, OPENAI_TEXT, MockServer


def tokens(admin: str) -> dict[str, float]:
    """ssegate_tokens_total of route anthropic, by kind."""
    text = httpx.get(f"http://{admin}/metrics", timeout=5).text
    out = {}
    for line in text.splitlines():
        if line.startswith("ssegate_tokens_total{") and 'route="anthropic"' in line:
            kind = line.split('kind="')[1].split('"')[0]
            out[kind] = float(line.rsplit(" ", 1)[1])
    return out


def main() -> None:
    mock = MockServer().start()
    with time_limit(55), Gateway("openai.toml", upstream=mock.url) as gw:
        client = anthropic.Anthropic(base_url=gw.base + "/anthropic", api_key="sk-ant-test", max_retries=0,
                                     timeout=30)
        with client.messages.stream(model="mock-claude", max_tokens=64,
                                    messages=[{"role": "user", "content": "Say hello"}]) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        check(text == OPENAI_TEXT, f"reassembled text differs:\n  got:      {text!r}\n  expected: {OPENAI_TEXT!r}")
        check(final.stop_reason == "end_turn", f"stop_reason {final.stop_reason!r}")
        usage = final.usage
        check(usage.input_tokens == ANTHROPIC_USAGE["input_tokens"]
              and usage.output_tokens == ANTHROPIC_USAGE["output_tokens"], f"SDK usage {usage!r}")
        want = {"input": float(usage.input_tokens), "output": float(usage.output_tokens)}
        deadline = time.monotonic() + 5
        while tokens(gw.admin) != want and time.monotonic() < deadline:
            time.sleep(0.05)
        check(tokens(gw.admin) == want, f"ssegate_tokens_total {tokens(gw.admin)!r}, expected {want!r}")
        reqs = mock.requests_to("/v1/messages")
        check(len(reqs) == 1, f"{len(reqs)} upstream requests to /v1/messages, expected 1")
        hdrs = reqs[0]["headers"]
        # The key reaches the upstream unchanged (this SDK version sends it as a bearer token, older ones as x-api-key).
        check("sk-ant-test" in (hdrs.get("x-api-key"), (hdrs.get("authorization") or "").removeprefix("Bearer ")),
              f"the API key was not forwarded: {hdrs!r}")

    mock.shutdown()
    print(f"ok: anthropic SDK {anthropic.__version__}: text reassembled, usage = ssegate_tokens_total "
          f"({ANTHROPIC_USAGE['input_tokens']} in, {ANTHROPIC_USAGE['output_tokens']} out)")


if __name__ == "__main__":
    main()
