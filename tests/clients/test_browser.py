"""Headless Chromium loads the page of `ssegate demo`; both panes — EventSource (GET) and fetch + POST with a
streamed reader — must show every token of the answer, in order, the right number of events, and the done marker.

The expected answer is not copied from the Rust source: the test reads it from the demo's mock upstream directly
(its NDJSON, bypassing the gateway), at the same time as the browser streams it through the gateway.
"""

from __future__ import annotations

import json
import sys
import threading
import urllib.request

from browser import Browser
from harness import Demo, check, time_limit

UNTIL = "['es-state', 'fetch-state'].every(id => " \
        "['done', 'error'].includes(document.getElementById(id).dataset.state))"
RESULT = """(() => {
  const t = (id) => document.getElementById(id).textContent;
  const s = (id) => document.getElementById(id).dataset.state;
  return {
    es: {text: t('es-out'), count: Number(t('es-count')), state: s('es-state'), marker: t('es-state')},
    fetch: {text: t('fetch-out'), count: Number(t('fetch-count')), state: s('fetch-state'), marker: t('fetch-state'),
            heartbeats: Number(t('fetch-hb'))},
  };
})()"""


def upstream_answer(mock_url: str, out: dict) -> None:
    """The mock's own NDJSON: the tokens and the number of messages the page must show."""
    try:
        with urllib.request.urlopen(mock_url + "/api/chat", timeout=30) as r:
            msgs = [json.loads(line) for line in r.read().decode().splitlines() if line.strip()]
        out["text"] = "".join(m["message"]["content"] for m in msgs)
        out["count"] = len(msgs)
        out["done"] = msgs[-1].get("done") is True
    except Exception as e:  # noqa: BLE001 - reported by the main thread
        out["error"] = repr(e)


def main() -> None:
    with time_limit(55), Demo() as demo:
        expected: dict = {}
        truth = threading.Thread(target=upstream_answer, args=(demo.mock_url, expected))
        truth.start()
        with Browser() as b:
            r = b.run(demo.base + "/", until=UNTIL, result=RESULT, timeout=40)
        truth.join(timeout=30)
        try:
            verify(r, expected)
        except AssertionError:
            print(json.dumps({"page": r["value"], "upstream": expected, "elapsed": r["elapsed"], "error": r["error"],
                              "console": r["console"]}, ensure_ascii=False, indent=1), file=sys.stderr)
            raise
    print(f"ok: browser: both panes show all {expected['count']} events and [DONE] ({r['elapsed']} s)")


def verify(r: dict, expected: dict) -> None:
    check(r["ok"], f"page did not finish: {r['error']}")
    check("error" not in expected and "text" in expected, f"reading the mock upstream failed: {expected}")
    check(expected["done"] and len(expected["text"]) > 100, f"unexpected mock answer: {expected}")
    for pane in ("es", "fetch"):
        got = r["value"][pane]
        check(got["state"] == "done" and got["marker"] == "[DONE]",
              f"{pane}: no done marker (state {got['state']!r}: {got['marker']!r})")
        check(got["text"] == expected["text"],
              f"{pane}: tokens differ from the upstream's\n  page:     {got['text']!r}\n  upstream: {expected['text']!r}")
        check(got["count"] == expected["count"],
              f"{pane}: {got['count']} events shown, upstream sent {expected['count']} messages")
    # The mock pauses 3.5 s with heartbeat_interval = 1s: the fetch pane counts the `: keepalive` comments.
    check(r["value"]["fetch"]["heartbeats"] >= 1, "fetch: no heartbeat seen during the 3.5 s pause")


if __name__ == "__main__":
    main()
