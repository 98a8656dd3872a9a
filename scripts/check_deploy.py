"""Offline checks of deploy/ beyond the Kubernetes schemas (run by scripts/check-deploy.sh)."""
import json, pathlib, re, sys
import yaml

root = pathlib.Path(__file__).resolve().parent.parent
deploy = root / "deploy"
errors = []

def err(msg):
    errors.append(msg)
    print("  ERROR", msg)

# Fields NodeConfiguration / SecurityConfiguration decode (unknown ones would be ignored silently by JSONDecoder,
# so a typo would silently fall back to a default: catch it here).
src = (root / "Sources/FacetCluster/NodeConfiguration.swift").read_text()
known = set(re.findall(r"public var (\w+)\s*:", src))
sec_path = root / "Sources/FacetCluster/SecurityConfiguration.swift"
sec_known = set(re.findall(r"public var (\w+)\s*:", sec_path.read_text())) if sec_path.exists() else None

docs = {}
for f in sorted((deploy / "kubernetes").glob("*.yaml")):
    for d in yaml.safe_load_all(f.read_text()):
        if d:
            docs.setdefault(d["kind"], []).append((f.name, d))

kinds = set(docs)
for need in ["ConfigMap", "Secret", "Deployment", "StatefulSet", "Service", "PodDisruptionBudget", "PersistentVolumeClaim"]:
    if need not in kinds:
        err(f"no {need} in deploy/kubernetes")

cm = {d["metadata"]["name"]: d for _, d in docs.get("ConfigMap", [])}["facet-config"]
configs = {}
for name, text in cm["data"].items():
    try:
        c = json.loads(text)
    except json.JSONDecodeError as e:
        err(f"facet-config/{name} is not JSON: {e}")
        continue
    configs[name] = c
    for k in c:
        if k not in known:
            err(f"facet-config/{name}: unknown field {k!r} (NodeConfiguration has {sorted(known)})")
    if "security" in c and sec_known is not None:
        for k in c["security"]:
            if k not in sec_known:
                err(f"facet-config/{name}: unknown security field {k!r}")
print(f"  configmap: {sorted(configs)} use known fields")

# Shard layout vs the StatefulSet: the coordinator's matcher ids are the pod names.
sts = {d["metadata"]["name"]: d for _, d in docs["StatefulSet"]}["facet-matcher"]
pods = [f"facet-matcher-{i}" for i in range(sts["spec"]["replicas"])]
coord = configs.get("coordinator.json", {})
if coord.get("matchers") != pods:
    err(f"coordinator.json matchers {coord.get('matchers')} != StatefulSet pods {pods}")
if not 1 <= coord.get("replicationFactor", 2) <= len(pods):
    err("replicationFactor out of range")
pdb = {d["metadata"]["name"]: d for _, d in docs["PodDisruptionBudget"]}["facet-matcher"]
if pdb["spec"].get("maxUnavailable", 0) > coord.get("replicationFactor", 2) - 1:
    err("the matcher PDB allows more matchers down than the replicas can cover")

# Every container: probes on the health endpoint, config files that the ConfigMap has, secrets that exist.
secrets = {d["metadata"]["name"]: d for _, d in docs["Secret"]}
services = {d["metadata"]["name"] for _, d in docs["Service"]}
workloads = docs["Deployment"] + docs["StatefulSet"]
for fname, w in workloads:
    spec = w["spec"]["template"]["spec"]
    labels = w["spec"]["template"]["metadata"]["labels"]
    if w["spec"]["selector"]["matchLabels"].items() - labels.items():
        err(f"{fname}: selector does not match the pod labels")
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    for c in spec["containers"]:
        for probe in ["livenessProbe", "readinessProbe"]:
            p = c.get(probe, {}).get("httpGet", {})
            want = "/healthz" if probe == "livenessProbe" else "/readyz"
            if p.get("path") != want:
                err(f"{fname}/{c['name']}: {probe} must GET {want}")
        args = c.get("args", [])
        if "--config" in args:
            cfg = args[args.index("--config") + 1]
            mounts = [m for m in c.get("volumeMounts", []) if cfg.startswith(m["mountPath"] + "/")]
            if not mounts:
                err(f"{fname}: {cfg} is not under a mounted volume")
            elif vols.get(mounts[0]["name"], {}).get("configMap", {}).get("name") == "facet-config":
                key = cfg.rsplit("/", 1)[1]
                if key not in cm["data"]:
                    err(f"{fname}: facet-config has no {key}")
        for m in c.get("volumeMounts", []):
            if m["name"] not in vols and not any(t["metadata"]["name"] == m["name"] for t in w["spec"].get("volumeClaimTemplates", [])):
                err(f"{fname}: volume {m['name']} is not defined")
    for v in vols.values():
        if "secret" in v and v["secret"]["secretName"] not in secrets:
            err(f"{fname}: secret {v['secret']['secretName']} is not defined")
# Files the configurations name under a secret mount must be keys of that secret.
mount_of = {"/etc/facet/curve": "facet-curve", "/etc/facet/at-rest": "facet-at-rest"}
for name, c in configs.items():
    for k, path in (c.get("security") or {}).items():
        if isinstance(path, str) and path.startswith("/etc/facet/"):
            d, f = path.rsplit("/", 1)
            s = secrets.get(mount_of.get(d, ""), {})
            if f not in s.get("stringData", {}) and f not in s.get("data", {}):
                err(f"facet-config/{name}: {k} = {path} is not in secret {mount_of.get(d)}")
for name, c in configs.items():
    be = c.get("backendEndpoint", "")
    host = re.sub(r"^tcp://([^:]+):\d+$", r"\1", be)
    if name != "coordinator.json" and host not in services:
        err(f"facet-config/{name}: backendEndpoint host {host} is not a Service")
print(f"  workloads: {[w['metadata']['name'] for _, w in workloads]} probe /healthz and /readyz, mounts resolve")
# The probes and the scrape annotations only work if the node really serves HTTP on that port: the container's
# `--http HOST:PORT` flag, else `httpEndpoint` in the configuration it reads, must bind the probed containerPort on
# a non-loopback address (kubelet and Prometheus connect to the pod IP).
def http_port(endpoint, where):
    m = re.fullmatch(r"(.*):(\d+)", endpoint or "")
    if not m:
        err(f"{where}: HTTP endpoint {endpoint!r} is not HOST:PORT")
        return None
    if m.group(1) in ("127.0.0.1", "localhost", "::1"):
        err(f"{where}: HTTP endpoint {endpoint} is loopback only; probes and scrapes come from outside the container")
    return int(m.group(2))

for fname, w in workloads:
    tmpl = w["spec"]["template"]
    for c in tmpl["spec"]["containers"]:
        where = f"{fname}/{c['name']}"
        args = c.get("args", [])
        ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        if "--http" in args:
            endpoint, source = args[args.index("--http") + 1], "--http"
        else:
            cfg = args[args.index("--config") + 1].rsplit("/", 1)[1] if "--config" in args else None
            endpoint, source = configs.get(cfg, {}).get("httpEndpoint"), f"facet-config/{cfg} httpEndpoint"
        if endpoint is None:
            err(f"{where}: probes on the health endpoint, but neither --http nor httpEndpoint enables it")
            continue
        port = http_port(endpoint, f"{where} ({source})")
        for probe in ["livenessProbe", "readinessProbe", "startupProbe"]:
            if probe not in c:
                continue
            pp = c[probe].get("httpGet", {}).get("port")
            pp = ports.get(pp) if isinstance(pp, str) else pp
            if pp != port:
                err(f"{where}: {probe} probes port {pp}, the node serves HTTP on {port} ({source})")
        ann = tmpl["metadata"].get("annotations", {})
        if "prometheus.io/port" in ann and int(ann["prometheus.io/port"]) != port:
            err(f"{where}: prometheus.io/port {ann['prometheus.io/port']} != HTTP port {port}")
print("  workloads: every probed container serves HTTP (--http / httpEndpoint) on the probed port")

# systemd units: every node enables the HTTP endpoint, and the three defaults do not collide on one host.
unit_ports = {}
for u in sorted((deploy / "systemd").glob("*.service")):
    text = u.read_text()
    exec_line = next((l for l in text.splitlines() if l.startswith("ExecStart=")), "")
    if " serve " not in exec_line:
        continue
    m = re.search(r"--http\s+(\S+)", exec_line)
    if not m:
        err(f"{u.name}: ExecStart does not pass --http (no /healthz, /readyz, /metrics)")
        continue
    endpoint = m.group(1)
    v = re.fullmatch(r"\$\{(\w+)\}", endpoint)
    if v:
        d = re.search(rf"^Environment={v.group(1)}=(\S+)$", text, re.M)
        if not d:
            err(f"{u.name}: --http ${{{v.group(1)}}} without a default Environment={v.group(1)}=…")
            continue
        endpoint = d.group(1)
    port = http_port(endpoint, u.name)
    if port in unit_ports:
        err(f"{u.name}: default HTTP port {port} is also {unit_ports[port]}'s")
    unit_ports[port] = u.name
print(f"  systemd: HTTP endpoints {sorted(unit_ports)} enabled, distinct")


kz = yaml.safe_load((deploy / "kubernetes/kustomization.yaml").read_text())
listed = set(kz["resources"])
present = {p.name for p in (deploy / "kubernetes").glob("*.yaml")} - {"kustomization.yaml"}
if listed != present:
    err(f"kustomization resources {sorted(listed)} != files {sorted(present)}")

# Grafana dashboard: valid JSON, unique panel ids, every metric it queries is one the nodes export.
dash = json.loads((deploy / "grafana/facet-dashboard.json").read_text())
ids = [p["id"] for p in dash["panels"]]
if len(ids) != len(set(ids)):
    err("dashboard panel ids are not unique")
exported = set()
for f in (root / "Sources").rglob("*.swift"):
    exported |= set(re.findall(r'"(facet_[a-z_]+)"', f.read_text()))
used = set()
for p in dash["panels"]:
    for t in p["targets"]:
        for m in re.findall(r"\b(facet_[a-z_]+)", t["expr"]):
            used.add(re.sub(r"_(bucket|sum|count)$", "", m))
missing = sorted(used - exported)
if missing:
    err(f"the dashboard queries metrics no node exports (no literal name in Sources/): {missing}")
print(f"  dashboard: {len(ids)} panels, metrics {sorted(used)}")

cf = (deploy / "Containerfile").read_text()
if len(re.findall(r"^FROM ", cf, re.M)) < 2:
    err("Containerfile is not multi-stage")
if "bookworm" not in cf and "debian:12" not in cf:
    err("Containerfile is not Debian 12 based")
expose = {int(p) for l in re.findall(r"^EXPOSE (.+)$", cf, re.M) for p in l.split()}
cmd = re.search(r"^CMD (\[.*\])$", cf, re.M)
cmd_args = json.loads(cmd.group(1)) if cmd else []
if "serve" in cmd_args:
    if "--http" not in cmd_args:
        err("Containerfile: the default CMD serves without --http")
    else:
        p = http_port(cmd_args[cmd_args.index("--http") + 1], "Containerfile CMD")
        if p not in expose:
            err(f"Containerfile: HTTP port {p} is not EXPOSEd ({sorted(expose)})")

if errors:
    print(f"[deploy] {len(errors)} problem(s)")
    sys.exit(1)
print("[deploy] consistency checks passed")
