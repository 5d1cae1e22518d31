"""Static checks of deploy/: every YAML (multi-document) and JSON file parses, and the pieces agree with each other.

- Kubernetes (deploy/k8s): every document has apiVersion, kind and metadata.name and validates strictly (no unknown
  fields) against the Kubernetes schemas of 1.28 and the newest release kubernetes-validate knows (offline; CRDs such
  as ServiceMonitor and the Kustomization are not in those schemas); the ConfigMap's ssegate.toml
  passes `ssegate check`; the Deployment's probes are /readyz (readiness) and /healthz (liveness) on the container
  port that the config's [admin] listen uses, the traffic port is exposed, the config is mounted where `--config`
  points, terminationGracePeriodSeconds > preStop sleep + shutdown_drain + 2 s; Service, HPA, PDB and ServiceMonitor
  point at what exists; kustomization lists existing files.
- Compose: every mounted host path, the build context and Dockerfile exist; Prometheus scrapes the ssegate service
  on the admin port of deploy/ssegate.toml; Grafana's dashboard provider path is where ssegate.json is mounted;
  stop_grace_period > shutdown_drain + 2 s.
- Dockerfile: two stages, non-root USER, EXPOSEd ports = deploy/ssegate.toml's, STOPSIGNAL SIGTERM, COPY sources
  exist and are not excluded by .dockerignore.
- systemd: TimeoutStopSec > shutdown_drain + 2 s of deploy/systemd/ssegate.toml, PIDFile = its pid_file,
  KillSignal=SIGTERM, ExecReload runs `ssegate reload` (SIGHUP) and upgrade.conf is the graceful-upgrade drop-in;
  `systemd-analyze verify` (when available) prints nothing.
- Every *.toml under deploy/ passes `ssegate check`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path

import kubernetes_validate
import yaml

from harness import ROOT, binary, check

DEPLOY = ROOT / "deploy"
K8S_VERSIONS = ("1.28.0", kubernetes_validate.latest_version())
problems: list[str] = []


def expect(cond: bool, message: str) -> None:
    if not cond:
        problems.append(message)


def seconds(duration: str) -> float:
    """The subset of humantime durations the deploy configs use: "250ms", "10s", "5m", "1h", "1h 30m"."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+)\s*(ms|s|m|h)\b", duration)
    check(parts and "".join(n + u for n, u in parts) == re.sub(r"\s", "", duration), f"duration {duration!r}")
    return sum(int(n) * units[u] for n, u in parts)


def port_of(addr: str) -> int:
    return int(addr.rsplit(":", 1)[1])


def ssegate_check(path: Path, label: str) -> None:
    r = subprocess.run([binary(), "check", "--config", str(path)], capture_output=True, text=True, timeout=30)
    expect(r.returncode == 0, f"{label}: ssegate check failed:\n{r.stdout}{r.stderr}")


def rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


# --- every YAML / JSON file parses --------------------------------------------------------------------------------

def parse_all() -> dict[Path, list]:
    docs: dict[Path, list] = {}
    files = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml", ".json"))
    check(len(files) >= 10, f"only {len(files)} YAML/JSON files under deploy/")
    for p in files:
        try:
            if p.suffix == ".json":
                docs[p] = [json.loads(p.read_text())]
            else:
                docs[p] = [d for d in yaml.safe_load_all(p.read_text()) if d is not None]
                expect(len(docs[p]) >= 1, f"{rel(p)}: no YAML document")
        except (yaml.YAMLError, json.JSONDecodeError) as e:
            problems.append(f"{rel(p)}: does not parse: {e}")
    return docs


# --- Kubernetes ---------------------------------------------------------------------------------------------------

def k8s(docs: dict[Path, list]) -> None:
    k8s_dir = DEPLOY / "k8s"
    objs: dict[str, list[dict]] = {}
    for p, ds in docs.items():
        if p.parent != k8s_dir:
            continue
        for d in ds:
            ok = isinstance(d, dict) and d.get("apiVersion") and d.get("kind")
            expect(ok, f"{rel(p)}: a document without apiVersion/kind")
            if not ok:
                continue
            if d["kind"] != "Kustomization":
                expect(bool((d.get("metadata") or {}).get("name")), f"{rel(p)}: {d['kind']} without metadata.name")
            objs.setdefault(d["kind"], []).append(d)
            for version in K8S_VERSIONS:
                try:
                    kubernetes_validate.validate(d, version, strict=True)
                except kubernetes_validate.SchemaNotFoundError:
                    expect(d["kind"] in ("ServiceMonitor", "Kustomization"), f"{rel(p)}: no schema for {d['kind']}")
                except kubernetes_validate.ValidationError as e:
                    problems.append(f"{rel(p)}: {d['kind']} invalid for Kubernetes {version}: {e.message}")
    for kind in ("ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "ServiceMonitor"):
        check(len(objs.get(kind, [])) == 1, f"deploy/k8s: expected one {kind}, found {len(objs.get(kind, []))}")

    cm, dep = objs["ConfigMap"][0], objs["Deployment"][0]
    svc, hpa, sm = objs["Service"][0], objs["HorizontalPodAutoscaler"][0], objs["ServiceMonitor"][0]
    toml_text = (cm.get("data") or {}).get("ssegate.toml")
    check(toml_text is not None, "ConfigMap has no data.ssegate.toml")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ssegate.toml"
        path.write_text(toml_text)
        ssegate_check(path, "deploy/k8s/configmap.yaml (ssegate.toml)")
    config = tomllib.loads(toml_text)
    admin_port = port_of(config["admin"]["listen"])
    listen = config["server"]["listen"]
    traffic_ports = {port_of(a) for a in ([listen] if isinstance(listen, str) else listen)}
    drain = seconds(config["server"].get("shutdown_drain", "10s"))

    pod = dep["spec"]["template"]
    pod_labels = pod["metadata"]["labels"]
    expect(dep["spec"]["selector"]["matchLabels"].items() <= pod_labels.items(),
           "Deployment selector does not match its pod labels")
    spec = pod["spec"]
    c = spec["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}

    def resolve(port) -> int | None:
        return ports.get(port) if isinstance(port, str) else port

    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = (c.get(probe) or {}).get("httpGet") or {}
        expect(get.get("path") == path, f"Deployment {probe} path {get.get('path')!r}, expected {path}")
        expect(resolve(get.get("port")) == admin_port,
               f"Deployment {probe} port {get.get('port')!r} is not the config's admin port {admin_port}")
    expect(traffic_ports <= set(ports.values()), f"container ports {ports} miss the traffic ports {traffic_ports}")

    args = c.get("args") or c.get("command") or []
    check("--config" in args, f"container args {args} have no --config")
    config_path = args[args.index("--config") + 1]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mounted = False
    for m in c.get("volumeMounts", []):
        vol = volumes.get(m["name"], {})
        if (vol.get("configMap") or {}).get("name") == cm["metadata"]["name"]:
            mounted = config_path == f"{m['mountPath'].rstrip('/')}/ssegate.toml"
    expect(mounted, f"the ConfigMap is not mounted so that {config_path} is its ssegate.toml")

    grace = spec.get("terminationGracePeriodSeconds", 30)
    pre_stop = ((c.get("lifecycle") or {}).get("preStop") or {})
    sleep = 0.0
    if "exec" in pre_stop:
        cmd = pre_stop["exec"]["command"]
        if cmd[0].endswith("sleep"):
            sleep = float(cmd[1])
    elif "sleep" in pre_stop:
        sleep = float(pre_stop["sleep"]["seconds"])
    expect(bool(pre_stop), "Deployment has no preStop hook")
    expect(grace > sleep + drain + 2,
           f"terminationGracePeriodSeconds {grace} <= preStop {sleep} s + shutdown_drain {drain} s + 2 s")
    sc = c.get("securityContext") or {}
    expect(sc.get("allowPrivilegeEscalation") is False and (spec.get("securityContext") or {}).get("runAsNonRoot"),
           "Deployment must run as non-root without privilege escalation")
    expect(bool((c.get("resources") or {}).get("requests")), "Deployment container has no resource requests")

    expect(svc["spec"]["selector"].items() <= pod_labels.items(), "Service selector does not match the pods")
    svc_ports = {p["name"]: p for p in svc["spec"]["ports"]}
    for p in svc_ports.values():
        expect(resolve(p["targetPort"]) is not None, f"Service targetPort {p['targetPort']!r} is not a container port")
    expect(hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
           and hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment", "HPA does not target the Deployment")
    expect(sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items(),
           "ServiceMonitor selector does not match the Service's labels")
    for ep in sm["spec"]["endpoints"]:
        target = svc_ports.get(ep.get("port"))
        expect(target is not None and resolve(target["targetPort"]) == admin_port,
               f"ServiceMonitor port {ep.get('port')!r} is not the Service port of the admin listener")
        expect(ep.get("path", "/metrics") == "/metrics", "ServiceMonitor path is not /metrics")
    for pdb in objs.get("PodDisruptionBudget", []):
        expect(pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items(), "PDB selector does not match")
    for kust in objs.get("Kustomization", []):
        for r in kust.get("resources", []):
            expect((k8s_dir / r).is_file(), f"kustomization.yaml lists missing {r}")
        listed = set(kust.get("resources", []))
        for p in k8s_dir.glob("*.yaml"):
            expect(p.name == "kustomization.yaml" or p.name in listed, f"kustomization.yaml does not list {p.name}")


# --- docker compose, Prometheus, Grafana --------------------------------------------------------------------------

def compose(docs: dict[Path, list]) -> None:
    path = DEPLOY / "docker-compose.yml"
    doc = docs[path][0]
    services = doc["services"]
    check({"ssegate", "prometheus", "grafana"} <= services.keys(), f"compose services {list(services)}")
    for name, s in services.items():
        for v in s.get("volumes", []):
            src = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
            if src.startswith((".", "/")):
                expect((DEPLOY / src).resolve().exists(), f"compose {name}: mounted {src} does not exist")
            else:
                expect(src in (doc.get("volumes") or {}), f"compose {name}: named volume {src} not declared")
        if "build" in s:
            ctx = (DEPLOY / s["build"]["context"]).resolve()
            expect(ctx.is_dir() and (ctx / s["build"]["dockerfile"]).is_file(), f"compose {name}: build context")
        for dep in s.get("depends_on", []):
            expect(dep in services, f"compose {name}: depends on unknown {dep}")

    config = tomllib.loads((DEPLOY / "ssegate.toml").read_text())
    admin_port = port_of(config["admin"]["listen"])
    expect(config["admin"]["listen"].startswith("0.0.0.0:"), "deploy/ssegate.toml: admin must listen on 0.0.0.0")
    mounts = [v for v in services["ssegate"].get("volumes", []) if isinstance(v, str)]
    expect(any(v.startswith("./ssegate.toml:/etc/ssegate/ssegate.toml") for v in mounts),
           "compose ssegate does not mount ./ssegate.toml at /etc/ssegate/ssegate.toml")
    grace = seconds(services["ssegate"].get("stop_grace_period", "10s"))
    drain = seconds(config["server"].get("shutdown_drain", "10s"))
    expect(grace > drain + 2, f"compose stop_grace_period {grace} s <= shutdown_drain {drain} s + 2 s")

    prom = docs[DEPLOY / "prometheus" / "prometheus.yml"][0]
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    check("ssegate" in jobs, "prometheus.yml has no job `ssegate` (alerts.yml expects it)")
    targets = [t for sc in jobs["ssegate"].get("static_configs", []) for t in sc["targets"]]
    expect(f"ssegate:{admin_port}" in targets, f"prometheus targets {targets} miss ssegate:{admin_port}")
    for rule_file in prom.get("rule_files", []):
        expect((DEPLOY / "prometheus" / rule_file).is_file(), f"prometheus.yml rule file {rule_file} missing")
        expect(any(v.endswith(f"/etc/prometheus/{rule_file}:ro") or v.endswith(f"/etc/prometheus/{rule_file}")
                   for v in services["prometheus"]["volumes"]), f"compose does not mount {rule_file}")

    prov = docs[DEPLOY / "grafana" / "provisioning" / "dashboards" / "ssegate.yml"][0]
    dash_dir = prov["providers"][0]["options"]["path"].rstrip("/")
    expect(any(v.startswith("./grafana/ssegate.json:") and v.split(":")[1].startswith(dash_dir + "/")
               for v in services["grafana"]["volumes"]),
           f"compose grafana does not mount grafana/ssegate.json under the provider path {dash_dir}")
    ds = docs[DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"][0]["datasources"][0]
    expect(ds["type"] == "prometheus" and ds["url"].startswith("http://prometheus:"), f"grafana data source {ds}")
    dash = docs[DEPLOY / "grafana" / "ssegate.json"][0]
    expect(bool(dash.get("panels")) and dash.get("uid"), "deploy/grafana/ssegate.json: no panels or uid")


# --- Dockerfile ---------------------------------------------------------------------------------------------------

def dockerfile() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [ln.strip() for ln in re.sub(r"\\\n", " ", text).splitlines() if ln.strip() and not ln.startswith("#")]
    froms = [ln for ln in lines if ln.upper().startswith("FROM ")]
    expect(len(froms) == 2 and " AS " in froms[0].upper(), f"Dockerfile: expected a build and a runtime stage: {froms}")
    expect("bookworm-slim" in froms[-1], "Dockerfile: runtime stage is not debian:bookworm-slim")
    users = [ln.split()[1] for ln in lines if ln.upper().startswith("USER ")]
    expect(users and users[-1].split(":")[0] not in ("0", "root"), f"Dockerfile: runs as {users}")
    expect(any(ln.upper() == "STOPSIGNAL SIGTERM" for ln in lines), "Dockerfile: STOPSIGNAL SIGTERM missing")
    expect("ca-certificates" in text, "Dockerfile: runtime image without ca-certificates")
    exposed = {int(p.split("/")[0]) for ln in lines if ln.upper().startswith("EXPOSE ") for p in ln.split()[1:]}
    config = tomllib.loads((DEPLOY / "ssegate.toml").read_text())
    want = {port_of(a) for a in config["server"]["listen"]} | {port_of(config["admin"]["listen"])}
    expect(exposed == want, f"Dockerfile EXPOSE {sorted(exposed)} != ports of deploy/ssegate.toml {sorted(want)}")
    expect("/etc/ssegate/ssegate.toml" in text, "Dockerfile: config not at /etc/ssegate/ssegate.toml")
    ignore = (ROOT / ".dockerignore").read_text().split()
    expect("target/" in ignore and ".git/" in ignore, ".dockerignore must exclude target/ and .git/")
    for ln in lines:
        if ln.upper().startswith("COPY ") and "--from=" not in ln:
            for src in ln.split()[1:-1]:
                if src != ".":
                    expect((ROOT / src).exists(), f"Dockerfile: COPY source {src} missing")
                    expect(src.startswith("deploy/") is False or f"!{src}" in ignore,
                           f"Dockerfile: COPY {src} is excluded by .dockerignore")


# --- systemd ------------------------------------------------------------------------------------------------------

def systemd() -> None:
    unit_path = DEPLOY / "systemd" / "ssegate.service"
    unit: dict[str, list[str]] = {}
    for ln in unit_path.read_text().splitlines():
        if "=" in ln and not ln.lstrip().startswith(("#", ";", "[")):
            k, v = ln.split("=", 1)
            unit.setdefault(k.strip(), []).append(v.strip())
    config = tomllib.loads((DEPLOY / "systemd" / "ssegate.toml").read_text())
    drain = seconds(config["server"].get("shutdown_drain", "10s"))
    stop = seconds(unit.get("TimeoutStopSec", ["90s"])[-1])
    expect(stop > drain + 2, f"TimeoutStopSec {stop} s <= shutdown_drain {drain} s + 2 s")
    expect(unit.get("KillSignal") == ["SIGTERM"], "unit: KillSignal=SIGTERM missing")
    expect(unit.get("PIDFile") == [config["server"].get("pid_file")], "unit PIDFile != the config's pid_file")
    expect(any("run" in e and "--config /etc/ssegate/ssegate.toml" in e for e in unit.get("ExecStart", [])),
           "unit: ExecStart does not run --config /etc/ssegate/ssegate.toml")
    expect(any("ssegate reload --config /etc/ssegate/ssegate.toml" in e for e in unit.get("ExecReload", [])),
           "unit: ExecReload does not run `ssegate reload` (validate, then SIGHUP)")
    upgrade = (DEPLOY / "systemd" / "upgrade.conf").read_text()
    expect(" run -u " in upgrade and "ExecReload=\n" in upgrade,
           "systemd/upgrade.conf: the graceful-upgrade drop-in must reset ExecReload and run `run -u`")
    expect(bool(unit.get("LimitNOFILE")), "unit: LimitNOFILE missing")
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        print("deploy: systemd-analyze not installed; unit verified by the checks above only")
        return
    with tempfile.TemporaryDirectory() as tmp:
        # verify wants the ExecStart binary to exist: point it at the one under test.
        copy = Path(tmp) / "ssegate.service"
        copy.write_text(unit_path.read_text().replace("/usr/local/bin/ssegate", binary()))
        r = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60)
        out = (r.stdout + r.stderr).strip()
        expect(r.returncode == 0 and not out, f"systemd-analyze verify: exit {r.returncode}: {out}")


def main() -> None:
    docs = parse_all()
    for fn in (lambda: k8s(docs), lambda: compose(docs), dockerfile, systemd):
        try:
            fn()
        except (AssertionError, KeyError, IndexError, TypeError, ValueError) as e:
            problems.append(f"{type(e).__name__}: {e}")
    tomls = sorted(DEPLOY.rglob("*.toml"))
    for p in tomls:
        ssegate_check(p, rel(p))
    for p in problems:
        print(f"deploy: {p}")
    check(not problems, f"{len(problems)} problem(s) in deploy/")
    print(f"ok: deploy: {len(docs)} YAML/JSON files parse; k8s, compose, Dockerfile, systemd consistent; "
          f"{len(tomls)} configs pass ssegate check")


if __name__ == "__main__":
    main()
