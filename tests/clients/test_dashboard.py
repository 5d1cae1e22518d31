"""A real Prometheus (Debian's ``prometheus``) scrapes a gateway under traffic with the shipped
``deploy/prometheus/prometheus.yml`` (targets pointed at the test gateway, intervals shortened) and
``alerts.yml``; then every PromQL expression of ``deploy/grafana/ssegate.json`` is evaluated through Prometheus'
HTTP API with the dashboard's variables filled in (``$route``/``$instance`` = ``.*``, ``$__rate_interval`` =
``1m``). Every panel must return data (a series, even if its value is 0: an empty panel reads as "no data" in
Grafana), and every alert rule must be loaded and healthy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import httpx
import yaml

from harness import ROOT, Gateway, check, free_port, time_limit
from mock_upstream import MockServer

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def dashboard_exprs() -> list[tuple[str, str]]:
    board = json.loads((ROOT / "deploy/grafana/ssegate.json").read_text())
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((p.get("title", "?"), t["expr"]))
            walk(p.get("panels", []))

    walk(board["panels"])
    return out


def fill(expr: str) -> str:
    for var, value in (("$__rate_interval", "1m"), ("$__interval", "15s"), ("$__range", "5m"),
                       ("$route", ".*"), ("$instance", ".*")):
        expr = expr.replace(var, value)
    return expr


def traffic(base: str, stop: threading.Event) -> None:
    with httpx.Client(timeout=20) as http:
        while not stop.is_set():
            http.get(base + "/api/chat", headers={"Accept": "text/event-stream"})  # a stream with heartbeats
            http.get(base + "/api/tags")                                            # passthrough JSON
            http.get(base + "/nowhere")                                             # 404 before a route


def query(http: httpx.Client, prom: str, expr: str) -> list:
    r = http.get(f"{prom}/api/v1/query", params={"query": expr})
    body = r.json()
    check(body.get("status") == "success", f"query failed: {expr}\n{body}")
    return body["data"]["result"]


def main() -> None:
    mock = MockServer().start()
    with time_limit(110), Gateway("ollama.toml", upstream=mock.url) as gw, \
            tempfile.TemporaryDirectory(prefix="ssegate-prom-") as tmp:
        conf = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
        conf["global"]["scrape_interval"] = "1s"
        conf["global"]["evaluation_interval"] = "1s"
        conf["rule_files"] = [str(ROOT / "deploy/prometheus/alerts.yml")]
        for job in conf["scrape_configs"]:
            job["scrape_interval"] = "1s"
            job["scrape_timeout"] = "1s"
            job["static_configs"] = [{"targets": [gw.admin]}]
        (Path(tmp) / "prometheus.yml").write_text(yaml.safe_dump(conf))
        port = free_port()
        prom = f"http://127.0.0.1:{port}"
        log = open(Path(tmp) / "prometheus.log", "wb")
        proc = subprocess.Popen([PROMETHEUS, f"--config.file={tmp}/prometheus.yml",
                                 f"--storage.tsdb.path={tmp}/data", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        stop = threading.Event()
        load = threading.Thread(target=traffic, args=(gw.base, stop), daemon=True)
        load.start()
        try:
            with httpx.Client(timeout=5) as http:
                deadline = time.monotonic() + 40
                while True:  # until the target was scraped a few times (rates need two samples)
                    try:
                        up = query(http, prom, 'count_over_time(up{job="ssegate"}[1m])')
                        if up and float(up[0]["value"][1]) >= 6:
                            break
                    except (httpx.HTTPError, ValueError):
                        pass
                    check(time.monotonic() < deadline and proc.poll() is None,
                          f"prometheus did not scrape the gateway; log:\n{(Path(tmp) / 'prometheus.log').read_text()}")
                    time.sleep(0.5)
                exprs = dashboard_exprs()
                empty = [(title, e) for title, e in exprs if not query(http, prom, fill(e))]
                check(not empty, "dashboard expressions without data:\n" +
                      "\n".join(f"  {t}: {e}" for t, e in empty))
                groups = http.get(f"{prom}/api/v1/rules").json()["data"]["groups"]
                rules = [r for g in groups for r in g["rules"]]
                expected = sum(len(g["rules"]) for g in yaml.safe_load(
                    (ROOT / "deploy/prometheus/alerts.yml").read_text())["groups"])
                check(len(rules) == expected, f"{len(rules)} rules loaded, {expected} in alerts.yml")
                bad = [(r["name"], r.get("lastError")) for r in rules if r.get("health") != "ok"]
                check(not bad, f"unhealthy rules: {bad}")
        finally:
            stop.set()
            load.join(timeout=20)
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
    mock.shutdown()
    print(f"ok: dashboard: all {len(exprs)} panel expressions return data from a real Prometheus; "
          f"{len(rules)} alert rules healthy")


if __name__ == "__main__":
    main()
