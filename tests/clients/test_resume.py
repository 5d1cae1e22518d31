"""Resumable streams with real clients: each reads the mock's /resume (40 events, 50 ms apart) through a resumable
route (resume.toml), and its connection is cut mid-stream; each must end with every event exactly once, in order,
then the `done` event, while the upstream was requested once per stream (readers are served from the store).

- the npm `eventsource` package through a TCP proxy that cuts the connection twice (resume_client.mjs): it
  reconnects by itself with Last-Event-ID; the reconnect after the end gets 204 and it stops;
- headless Chromium's own `EventSource`, on a page of another origin (CORS), through the same kind of proxy;
- httpx (a fetch-style client): POST, read some events, drop the connection, then GET /r/_streams/<stream> with
  Last-Event-ID; a resume from the end is 204.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import httpx

from browser import Browser, StaticSite
from cutting_proxy import CuttingProxy
from harness import HERE, Gateway, check, time_limit
from mock_upstream import RESUME_EVENT_COUNT, MockServer

CUTS = [10, 25]
WANT = list(range(1, RESUME_EVENT_COUNT + 1))

PAGE = """<!doctype html><meta charset="utf-8"><title>resume</title>
<script>
window.__r = {seqs: [], ids: [], opens: 0, errors: 0, done: false, closed: false};
const es = new EventSource(%(url)s);
es.onopen = () => { window.__r.opens++; };
es.onmessage = (e) => { window.__r.seqs.push(JSON.parse(e.data).seq); window.__r.ids.push(e.lastEventId); };
es.addEventListener("done", () => { window.__r.done = true; });
es.onerror = () => { window.__r.errors++; if (es.readyState === EventSource.CLOSED) window.__r.closed = true; };
</script>"""


def gateway_port(gw: Gateway) -> tuple[str, int]:
    host, port = gw.listen.rsplit(":", 1)
    return host, int(port)


def upstream_requests(mock: MockServer) -> int:
    return len(mock.requests_to("/resume"))


def check_ids(ids: list[str]) -> None:
    stream = ids[0].split(".")[0] if ids else ""
    check(len(stream) == 32, f"ids are <stream>.<seq>: {ids[:3]}")
    check(ids == [f"{stream}.{i}" for i in WANT], f"ids in order without gap or duplicate: {ids}")


def npm_eventsource(gw: Gateway, mock: MockServer) -> None:
    node = shutil.which("node")
    check(node is not None, "node not found (scripts/setup.sh installs it)")
    check((HERE / "node_modules" / "eventsource").is_dir(),
          "tests/clients/node_modules/eventsource missing: run `npm ci` in tests/clients (scripts/clients.sh does)")
    before = upstream_requests(mock)
    with CuttingProxy(gateway_port(gw), CUTS) as proxy:
        proc = subprocess.run([node, "resume_client.mjs", proxy.url + "/r/resume", str(RESUME_EVENT_COUNT)],
                              cwd=HERE, capture_output=True, text=True, timeout=45)
        print(proc.stdout.strip()[-600:])
        if proc.stderr.strip():
            print(proc.stderr.strip(), file=sys.stderr)
        lines = proc.stdout.strip().splitlines()
        result = json.loads(lines[-1]) if lines else {}
        check(proc.returncode == 0 and result.get("ok") is True,
              f"npm eventsource: exit {proc.returncode}, problems {result.get('problems')}")
        check(proxy.cuts == 2, f"the proxy cut {proxy.cuts} connections, expected 2")
    check(upstream_requests(mock) - before == 1, "npm eventsource: the upstream was requested more than once")


def chromium(gw: Gateway, mock: MockServer, site: StaticSite, pages: dict) -> None:
    before = upstream_requests(mock)
    with CuttingProxy(gateway_port(gw), CUTS) as proxy, Browser() as b:
        pages["/"] = ("text/html; charset=utf-8", (PAGE % {"url": json.dumps(proxy.url + "/r/resume")}).encode())
        r = b.run(site.origin + "/", until="window.__r.closed", result="window.__r", timeout=40)
        v = r["value"] or {}
        try:
            check(r["ok"], f"chromium: the EventSource did not close by itself: {r['error']}")
            check(v["seqs"] == WANT, f"chromium: events {v['seqs']}")
            check_ids(v["ids"])
            check(v["done"], "chromium: no done event")
            check(v["opens"] == 3, f"chromium: opened {v['opens']} times, expected 3 (first + one per cut)")
            check(proxy.cuts == 2, f"the proxy cut {proxy.cuts} connections, expected 2")
        except AssertionError:
            print(json.dumps({"page": v, "console": r["console"]}, indent=1), file=sys.stderr)
            raise
    check(upstream_requests(mock) - before == 1, "chromium: the upstream was requested more than once")


def sse_events(lines) -> list[tuple[str | None, str | None, str]]:
    """(id, event, data) of each event in an iterator of lines (comments skipped)."""
    out, ev_id, name, data = [], None, None, []
    for line in lines:
        if line == "":
            if data:
                out.append((ev_id, name, "\n".join(data)))
            ev_id, name, data = None, None, []
        elif line.startswith("id: "):
            ev_id = line[4:]
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
    return out


def httpx_fetch(gw: Gateway, mock: MockServer) -> None:
    before = upstream_requests(mock)
    got: list[tuple[str | None, str | None, str]] = []
    with httpx.Client(timeout=10) as c:
        with c.stream("POST", gw.base + "/r/resume", json={"q": 1}) as r:
            check(r.status_code == 200, f"httpx: POST answered {r.status_code}")
            stream = r.headers["ssegate-stream-id"]
            ev_id, data = None, None
            for line in r.iter_lines():
                if line.startswith("id: "):
                    ev_id = line[4:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "" and data is not None:
                    got.append((ev_id, None, data))
                    ev_id, data = None, None
                    if len(got) == 7:
                        break  # leaving the block closes the connection mid-stream
        last = got[-1][0]
        check(last == f"{stream}.7", f"httpx: last id {last}")
        with c.stream("GET", f"{gw.base}/r/_streams/{stream}", headers={"Last-Event-ID": last}) as r:
            check(r.status_code == 200, f"httpx: resume answered {r.status_code}")
            got += sse_events(r.iter_lines())
        seqs = [json.loads(d)["seq"] for _, name, d in got if name is None]
        check(seqs == WANT, f"httpx: events {seqs}")
        check_ids([i for i, name, _ in got if name is None])
        check(got[-1][1:] == ("done", "[DONE]"), f"httpx: last event {got[-1]}")
        end = c.get(f"{gw.base}/r/_streams/{stream}", params={"after": got[-1][0].split(".")[1]})
        check(end.status_code == 204, f"httpx: a resume from the end answered {end.status_code}")
        unknown = c.get(f"{gw.base}/r/_streams/{'0' * 32}")
        check(unknown.status_code == 404 and unknown.json()["error"]["type"] == "resume_unknown",
              f"httpx: unknown stream: {unknown.status_code} {unknown.text}")
    posts = [q for q in mock.requests_to("/resume")[before:] if q["method"] == "POST"]
    check(len(posts) == 1 and upstream_requests(mock) - before == 1, "httpx: the upstream was requested more than once")


def main() -> None:
    mock = MockServer().start()
    pages: dict = {}
    with time_limit(55), StaticSite(pages) as site:
        gw = Gateway("resume.toml", upstream=mock.url)
        gw.template = gw.template.replace("${ORIGIN}", site.origin)
        with gw:
            npm_eventsource(gw, mock)
            print("ok: npm eventsource: 2 cuts, 40 events once each in order, done, then 204")
            chromium(gw, mock, site, pages)
            print("ok: chromium EventSource (cross-origin): 2 cuts, 40 events once each in order, done, then 204")
            httpx_fetch(gw, mock)
            print("ok: httpx: POST, cut after 7 events, /_streams/<stream> with Last-Event-ID to the end, then 204")
    mock.shutdown()
    print(f"ok: resume: three clients, each saw all {RESUME_EVENT_COUNT} events once with one upstream request")


if __name__ == "__main__":
    main()
