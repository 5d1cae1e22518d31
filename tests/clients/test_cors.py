"""Cross-origin streaming in a real browser: a page served by one origin (a static site on its own port) streams
from the gateway on another origin, with EventSource (GET) and with fetch + POST + JSON + an Authorization key
(which makes the browser send a CORS preflight). The route's `cors.allow_origins` lists the page's origin.

- allowed origin: both paths show every token in order and the done event; a wrong key is a readable 401 (the
  error carries Access-Control-Allow-Origin, so the page sees the status instead of a network error);
- another origin (a second static site, not listed): the browser blocks both paths, and the POST never reaches the
  upstream because the gateway refuses the preflight.
"""

from __future__ import annotations

import json
import os
import sys

from browser import Browser, StaticSite
from harness import Gateway, check, time_limit
from mock_upstream import OLLAMA_TOKENS, MockServer

KEY = "cors-test-key-4f1c9a"

PAGE = """<!doctype html><meta charset="utf-8"><title>cross-origin</title><body><pre id="out"></pre><script>
const GW = %(gw)s, KEY = %(key)s;
const r = window.__r = {
  es: {tokens: [], done: false, error: null},
  fetch: {tokens: [], done: false, error: null, status: 0},
  badKey: {status: 0, type: null, error: null},
};
const es = new EventSource(GW + "/api/chat");
es.onmessage = (e) => { const m = JSON.parse(e.data); if (!m.done) r.es.tokens.push(m.message.content); };
es.addEventListener("done", () => { r.es.done = true; es.close(); });
es.onerror = () => { if (!r.es.done) { r.es.error = "EventSource error"; es.close(); } };

function sse(text, into) {  // minimal SSE parsing of complete blocks; returns the unparsed rest
  const blocks = text.split("\\n\\n"); const rest = blocks.pop();
  for (const b of blocks) {
    let ev = "message", data = [];
    for (const line of b.split("\\n")) {
      if (line.startsWith(":")) continue;
      if (line.startsWith("event: ")) ev = line.slice(7);
      if (line.startsWith("data: ")) data.push(line.slice(6));
    }
    if (!data.length) continue;
    if (ev === "done") { into.done = true; continue; }
    const m = JSON.parse(data.join("\\n")); if (!m.done) into.tokens.push(m.message.content);
  }
  return rest;
}
(async () => {
  try {
    const resp = await fetch(GW + "/keyed/api/chat", {method: "POST",
      headers: {"content-type": "application/json", "authorization": "Bearer " + KEY},
      body: JSON.stringify({model: "mock", messages: [{role: "user", content: "hi"}]})});
    r.fetch.status = resp.status;
    const reader = resp.body.getReader(), dec = new TextDecoder(); let buf = "";
    for (;;) { const {value, done} = await reader.read(); if (done) break;
               buf = sse(buf + dec.decode(value, {stream: true}), r.fetch); }
    if (!r.fetch.done) r.fetch.error = "stream ended without the done event";
  } catch (e) { r.fetch.error = String(e); }
})();
(async () => {
  try {
    const resp = await fetch(GW + "/keyed/api/chat", {method: "POST",
      headers: {"content-type": "application/json", "authorization": "Bearer wrong"}, body: "{}"});
    r.badKey.status = resp.status; r.badKey.type = (await resp.json()).error.type;
  } catch (e) { r.badKey.error = String(e); }
})();
</script>"""

UNTIL = ("(() => { const r = window.__r; return r && (r.es.done || r.es.error) && (r.fetch.done || r.fetch.error)"
         " && (r.badKey.status || r.badKey.error); })()")


def main() -> None:
    os.environ["SSEGATE_CORS_TEST_KEY"] = KEY  # inherited by the gateway: the route's keys_env
    mock = MockServer().start()
    allowed_pages: dict = {}
    other_pages: dict = {}
    with time_limit(55), StaticSite(allowed_pages) as allowed, StaticSite(other_pages) as other:
        gw = Gateway("cors.toml", upstream=mock.url)
        gw.template = gw.template.replace("${ORIGIN}", allowed.origin)
        with gw, Browser() as b:
            page = (PAGE % {"gw": json.dumps(gw.base), "key": json.dumps(KEY)}).encode()
            allowed_pages["/"] = ("text/html; charset=utf-8", page)
            other_pages["/"] = ("text/html; charset=utf-8", page)

            ok = b.run(allowed.origin + "/", until=UNTIL, result="window.__r", timeout=30)
            posts_before = len(mock.requests_to("/api/chat"))
            blocked = b.run(other.origin + "/", until=UNTIL, result="window.__r", timeout=30)
            posts_after = [r for r in mock.requests_to("/api/chat")[posts_before:] if r["method"] == "POST"]
            try:
                verify(ok, blocked, posts_after)
            except AssertionError:
                print(json.dumps({"allowed": ok, "other": blocked}, ensure_ascii=False, indent=1), file=sys.stderr)
                raise
    mock.shutdown()
    print(f"ok: cors: {allowed.origin} streamed {len(OLLAMA_TOKENS)} tokens cross-origin by EventSource and by "
          f"fetch+POST with a key (preflighted), wrong key a readable 401; {other.origin} blocked")


def verify(ok: dict, blocked: dict, posts_from_other: list) -> None:
    check(ok["ok"], f"allowed page did not finish: {ok['error']}")
    r = ok["value"]
    for path in ("es", "fetch"):
        check(r[path]["error"] is None, f"allowed origin, {path}: {r[path]['error']}")
        check(r[path]["tokens"] == OLLAMA_TOKENS, f"allowed origin, {path}: tokens {r[path]['tokens']!r}")
        check(r[path]["done"], f"allowed origin, {path}: no done event")
    check(r["fetch"]["status"] == 200, f"allowed origin, fetch: status {r['fetch']['status']}")
    check(r["badKey"]["status"] == 401 and r["badKey"]["type"] == "unauthorized",
          f"allowed origin, wrong key: {r['badKey']!r} (a 401 without CORS headers is a network error to the page)")

    check(blocked["ok"], f"other-origin page did not finish: {blocked['error']}")
    r = blocked["value"]
    for path in ("es", "fetch"):
        check(r[path]["error"] is not None and not r[path]["tokens"],
              f"other origin, {path}: not blocked: {r[path]!r}")
    check(r["badKey"]["error"] is not None, f"other origin, wrong key: readable {r['badKey']!r}")
    check(any("CORS" in c["message"] for c in blocked["console"]), "other origin: no CORS error in the console")
    check(not posts_from_other, f"other origin: a refused preflight still let POSTs reach the upstream: "
                                f"{posts_from_other!r}")


if __name__ == "__main__":
    main()
