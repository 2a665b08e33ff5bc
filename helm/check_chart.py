"""Checks the fhircast-hub Helm chart offline; run through helm/check-chart.sh (make chart).

For the default values and for values-production.yaml (each with the example site facts
from tests/chart/site-example.yaml): schema validation, render, strict lint and strict
Kubernetes schema validation of the rendered manifests, then facts each must hold. Then
value sets that must refuse to render (production without TLS, …), each with the reason it
must give. Exits 1 on the first failed group, naming every failure.
"""

from __future__ import annotations

import copy
import pathlib
import shutil
import subprocess
import sys
import time

import helm_python as helm
import yaml

HELM_DIR = pathlib.Path(__file__).resolve().parent
CHART = HELM_DIR / "fhircast-hub"
SITE = HELM_DIR.parent / "tests" / "chart" / "site-example.yaml"
OUT = HELM_DIR / ".rendered"
RELEASE, NAMESPACE = "fhircast-hub", "fhircast"
# The chart's kubeVersion floor and a current release.
KUBE_VERSIONS = ["1.30.0", "1.34.0"]

# Every optional knob at once (as a site might set them), so their templates are rendered
# and validated too.
OPTIONS = {
    "image": {"digest": "sha256:" + "0" * 64},
    "imagePullSecrets": ["registry"],
    "redis": {"topology": "cluster", "hosts": "r0:7000,r1:7001", "tls": True,
              "auth": {"existingSecret": "redis", "usernameKey": ""}},
    "trustBundle": {"secret": "ca"},
    "grpcTls": {"enabled": True},
    "topics": {"nonCurrentContextUpdates": True},
    "gateway": {
        "tls": {"mode": "own", "existingSecret": "gw-tls"},
        "admin": {"enabled": True},
        "auth": {"jwksUrl": "https://smart.hospital.example/jwks", "algorithms": "RS256,ES256", "topicBinding": "owner"},
        "service": {"type": "LoadBalancer", "annotations": {"example.org/lb": "internal"}},
        "extraConfig": {"FHIRCAST_ACK_TIMEOUT_MS": 5000, "FHIRCAST_CORS_ORIGINS": "https://pacs.hospital.example"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "fhircast", "effect": "NoSchedule"}],
        "priorityClassName": "high",
        "podAnnotations": {"example.org/a": "b"},
        "podLabels": {"team": "radiology"},
    },
    "hubNode": {
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}]}}},
        "extraConfig": {"FHIRCAST_REDIS_WAIT_MS": 500},
        "pdb": {"enabled": False},
    },
    "serviceAccount": {"create": False, "name": "existing"},
    "networkPolicy": {"publicFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}]},
}

failures: list[str] = []


def check(cond: bool, what: str) -> None:
    if not cond:
        failures.append(what)


def load(path: pathlib.Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def merge(base: dict, over: dict) -> dict:
    """Helm's -f layering: maps merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def render(values: dict) -> dict[str, str]:
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(values)
        return chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


def docs_of(rendered: dict[str, str]) -> list[dict]:
    docs = []
    for path, text in sorted(rendered.items()):
        if path.endswith(".yaml"):
            docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def lint(values: dict, label: str) -> None:
    for kube in KUBE_VERSIONS:
        report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE, kube_version=f"v{kube}")
        findings = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
        check(not report.get("errors") and not findings, f"{label}: strict lint (kube {kube}): {report}")


def kube_validate(rendered: dict[str, str], label: str) -> None:
    folder = OUT / label
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    files = []
    for path, text in rendered.items():
        if path.endswith(".yaml") and text.strip():
            target = folder / pathlib.Path(path).name
            target.write_text(text)
            files.append(str(target))
    validator = HELM_DIR / ".venv-helm" / "bin" / "kubernetes-validate"
    for kube in KUBE_VERSIONS:
        run = subprocess.run(
            [str(validator), "--strict", "--quiet", "-k", kube, *sorted(files)],
            capture_output=True, text=True,
        )
        # cert-manager Certificates are CRDs: kubernetes-validate only warns about them.
        unexpected = [
            line for line in (run.stdout + run.stderr).splitlines()
            if line.strip() and "cert-manager.io/v1" not in line and "Certificate" not in line
        ]
        check(run.returncode == 0 and not unexpected,
              f"{label}: kubernetes-validate --strict -k {kube}: exit {run.returncode}\n{run.stdout}{run.stderr}")


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def named(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in by_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def containers(docs: list[dict]) -> list[tuple[str, dict]]:
    out = []
    for d in docs:
        if d.get("kind") in ("Deployment", "StatefulSet"):
            for c in d["spec"]["template"]["spec"]["containers"]:
                out.append((d["metadata"]["name"], c))
    return out


def settings(docs: list[dict], workload: dict, container: dict) -> dict[str, object]:
    """The container's environment: its ConfigMaps' data, then its env entries (a value,
    or the valueFrom mapping)."""
    env: dict[str, object] = {}
    for source in container.get("envFrom", []):
        cm = named(docs, "ConfigMap", source["configMapRef"]["name"])
        env.update(cm.get("data", {}))
    for entry in container.get("env", []):
        env[entry["name"]] = entry.get("value", entry.get("valueFrom"))
    return env


def common_facts(docs: list[dict], label: str) -> None:
    check(not by_kind(docs, "Secret"), f"{label}: the chart must create no Secret")
    for name, c in containers(docs):
        sc = c.get("securityContext", {})
        check(sc.get("runAsNonRoot") is True, f"{label}: {name}: runAsNonRoot")
        check(sc.get("readOnlyRootFilesystem") is True, f"{label}: {name}: readOnlyRootFilesystem")
        check(sc.get("allowPrivilegeEscalation") is False, f"{label}: {name}: allowPrivilegeEscalation false")
        check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{label}: {name}: drop ALL capabilities")
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            check(probe in c, f"{label}: {name}: {probe}")
        check("limits" in c.get("resources", {}) and "requests" in c.get("resources", {}),
              f"{label}: {name}: resources")
    for d in docs:
        if d.get("kind") in ("Deployment", "StatefulSet"):
            check(d["spec"]["template"]["spec"].get("automountServiceAccountToken") is False,
                  f"{label}: {d['metadata']['name']}: service account token not mounted")
    gw = named(docs, "Deployment", f"{RELEASE}-gateway")
    gwc = gw["spec"]["template"]["spec"]["containers"][0]
    check(gwc["readinessProbe"]["httpGet"]["path"] == "/readyz", f"{label}: gateway readiness on /readyz")
    check(gwc["livenessProbe"]["httpGet"]["path"] == "/healthz", f"{label}: gateway liveness on /healthz")
    sts = named(docs, "StatefulSet", f"{RELEASE}-node")
    check(sts["spec"]["serviceName"] == f"{RELEASE}-node", f"{label}: StatefulSet uses the headless Service")
    headless = named(docs, "Service", f"{RELEASE}-node")
    check(headless["spec"].get("clusterIP") == "None", f"{label}: node Service is headless")
    node = sts["spec"]["template"]["spec"]["containers"][0]
    env = settings(docs, sts, node)
    check(env.get("FHIRCAST_NODE_ID") == "$(POD_NAME)", f"{label}: node id from the pod name")
    check(env.get("FHIRCAST_ADVERTISE_ADDRESS")
          == f"$(POD_NAME).{RELEASE}-node.{NAMESPACE}.svc.cluster.local:50051",
          f"{label}: node advertises its pod DNS name: {env.get('FHIRCAST_ADVERTISE_ADDRESS')}")
    # The public Service never carries the admin port, whatever its type.
    public = named(docs, "Service", f"{RELEASE}-gateway")
    check([p["targetPort"] for p in public["spec"]["ports"]] == ["http"],
          f"{label}: public Service exposes only the public port")
    for name, c in containers(docs):
        workload = next(d for d in docs if d.get("kind") in ("Deployment", "StatefulSet") and d["metadata"]["name"] == name)
        env = settings(docs, workload, c)
        for key in ("FHIRCAST_TOPIC_KEY", "REDIS_PASSWORD", "REDIS_USERNAME"):
            if key in env:
                check(isinstance(env[key], dict) and "secretKeyRef" in env[key],
                      f"{label}: {name}: {key} must come from a Secret")
        for key, value in env.items():
            if any(word in key for word in ("KEY", "TOKEN", "PASSWORD", "SECRET", "CERT", "_CA")) \
                    and not isinstance(value, dict):
                check(str(value).startswith("/etc/fhircast/"), f"{label}: {name}: {key} holds a literal, not a file path")
        url = str(env.get("FHIRCAST_REDIS_URL", ""))
        check(url.startswith("redis"), f"{label}: {name}: FHIRCAST_REDIS_URL set")
        check("@" not in url or url.split("://", 1)[1].split("@", 1)[0].endswith("$(REDIS_PASSWORD)"),
              f"{label}: {name}: Redis credentials only through $(REDIS_PASSWORD): {url}")


def default_facts(docs: list[dict]) -> None:
    label = "values.yaml"
    common_facts(docs, label)
    check(not [d for d in by_kind(docs, "Service") if d["metadata"]["name"].endswith("-admin")],
          f"{label}: no admin Service when the admin API is off")
    sts = named(docs, "StatefulSet", f"{RELEASE}-node")
    env = settings(docs, sts, sts["spec"]["template"]["spec"]["containers"][0])
    check(env.get("FHIRCAST_GRPC_INSECURE_ALLOW") == "true",
          f"{label}: without mutual TLS the nodes run with --grpc-insecure-allow")
    check(len(by_kind(docs, "NetworkPolicy")) == 2, f"{label}: NetworkPolicies on by default")


def production_facts(docs: list[dict]) -> None:
    label = "values-production.yaml"
    common_facts(docs, label)
    for name, c in containers(docs):
        workload = next(d for d in docs if d.get("kind") in ("Deployment", "StatefulSet") and d["metadata"]["name"] == name)
        env = settings(docs, workload, c)
        url = str(env.get("FHIRCAST_REDIS_URL"))
        check(url.startswith("rediss://") or url.startswith("rediss+"), f"{label}: {name}: Redis over TLS: {url}")
        check(url.split("://", 1)[1].startswith("$(REDIS_USERNAME):$(REDIS_PASSWORD)@"),
              f"{label}: {name}: Redis ACL user and password from the Secret: {url}")
        check("SSL_CERT_FILE" in env, f"{label}: {name}: trust bundle for Redis's CA")
        check("FHIRCAST_GRPC_INSECURE_ALLOW" not in env, f"{label}: {name}: no plaintext gRPC")
        if c["name"] == "gateway":
            for key in ("FHIRCAST_GRPC_TLS_CA", "FHIRCAST_GRPC_CLIENT_CERT", "FHIRCAST_GRPC_CLIENT_KEY"):
                check(key in env, f"{label}: gateway: {key} (gRPC mutual TLS)")
            check(env.get("FHIRCAST_TOPIC_BINDING") in ("claim", "owner"), f"{label}: topic binding")
            check(str(env.get("FHIRCAST_PUBLIC_URL", "")).startswith("https://"), f"{label}: https public URL")
            check("FHIRCAST_TLS_CERT" in env or env.get("FHIRCAST_BEHIND_TLS_PROXY") == "true",
                  f"{label}: gateway TLS own or behind a TLS proxy")
            check(env.get("FHIRCAST_ADMIN_LISTEN") == "0.0.0.0:9443"
                  and str(env.get("FHIRCAST_ADMIN_TOKEN_FILE", "")).startswith("/etc/fhircast/admin/"),
                  f"{label}: admin API on its own port with a token file")
            check(int(env.get("FHIRCAST_RATE_LIMIT_PER_SECOND", 0)) > 0, f"{label}: rate limits on")
        else:
            for key in ("FHIRCAST_GRPC_TLS_CERT", "FHIRCAST_GRPC_TLS_KEY", "FHIRCAST_GRPC_CLIENT_CA"):
                check(key in env, f"{label}: hub node: {key} (gRPC mutual TLS)")
            check(int(env.get("FHIRCAST_REDIS_WAIT_REPLICAS", 0)) >= 1, f"{label}: WAIT for a Sentinel replica")
    admin = named(docs, "Service", f"{RELEASE}-gateway-admin")
    check(admin["spec"].get("type", "ClusterIP") == "ClusterIP", f"{label}: admin Service is ClusterIP")
    check([p["targetPort"] for p in admin["spec"]["ports"]] == ["admin"], f"{label}: admin Service: admin port only")
    # Node gRPC reachable only from gateways; admin port only from adminFrom.
    node_np = named(docs, "NetworkPolicy", f"{RELEASE}-node")
    rules = node_np["spec"]["ingress"]
    check(len(rules) == 1 and rules[0]["from"][0]["podSelector"]["matchLabels"].get("app.kubernetes.io/component") == "gateway"
          and [p["port"] for p in rules[0]["ports"]] == ["grpc"], f"{label}: node gRPC port from gateways only")
    gw_np = named(docs, "NetworkPolicy", f"{RELEASE}-gateway")
    admin_rules = [r for r in gw_np["spec"]["ingress"] if any(p["port"] == "admin" for p in r["ports"])]
    check(len(admin_rules) == 1 and admin_rules[0].get("from"), f"{label}: admin port restricted by source")
    check(all("admin" not in [p["port"] for p in r["ports"]] or r.get("from") for r in gw_np["spec"]["ingress"]),
          f"{label}: no open rule covers the admin port")
    # The node certificate names every node's advertised host.
    certs = {d["metadata"]["name"]: d for d in by_kind(docs, "Certificate")}
    node_cert = certs.get("fhircast-grpc-node")
    check(node_cert is not None, f"{label}: cert-manager Certificate for the nodes")
    if node_cert:
        names = node_cert["spec"]["dnsNames"]
        for i in range(3):
            check(f"{RELEASE}-node-{i}.{RELEASE}-node.{NAMESPACE}.svc.cluster.local" in names,
                  f"{label}: node certificate names {RELEASE}-node-{i}")
        check("server auth" in node_cert["spec"]["usages"], f"{label}: node certificate serverAuth")
    gw_cert = certs.get("fhircast-grpc-gateway")
    check(gw_cert is not None and "client auth" in gw_cert["spec"]["usages"], f"{label}: gateway client certificate")
    check(len(by_kind(docs, "PodDisruptionBudget")) == 2, f"{label}: PodDisruptionBudgets")


def must_refuse(label: str, values: dict, reason: str) -> None:
    try:
        render(values)
    except helm.HelmError as err:
        check(reason in str(err), f"refusal '{label}': expected '{reason}' in: {err}")
        return
    failures.append(f"refusal '{label}': rendered, but must refuse ({reason})")


def main() -> int:
    started = time.monotonic()
    helm.disable_logging()  # Helm's own log lines (e.g. lint's lenient `required`) are noise here
    defaults, production, site = load(CHART / "values.yaml"), load(CHART / "values-production.yaml"), load(SITE)
    shutil.rmtree(OUT, ignore_errors=True)

    for label, overlay, facts in (
        ("values.yaml", site, default_facts),
        ("values-production.yaml", merge(production, site), production_facts),
        ("options", merge(site, OPTIONS), lambda docs: common_facts(docs, "options")),
    ):
        values = merge(defaults, overlay)
        try:
            rendered = render(values)
        except helm.HelmError as err:
            failures.append(f"{label}: render failed: {err}")
            continue
        lint(overlay, label)
        kube_validate(rendered, label.removesuffix(".yaml"))
        facts(docs_of(rendered))
        print(f"chart: {label}: rendered {len(docs_of(rendered))} objects; lint, schema and kubernetes-validate run")

    prod = merge(defaults, merge(production, site))
    cases = [
        ("values.yaml alone (no site facts)", defaults, "gateway.publicUrl is required"),
        ("production, plaintext Redis", merge(prod, {"redis": {"tls": False}}), "/redis/tls"),
        ("production, no gRPC mutual TLS", merge(prod, {"grpcTls": {"enabled": False}}), "/grpcTls/enabled"),
        ("production, Redis without a password", merge(prod, {"redis": {"auth": {"existingSecret": ""}}}),
         "redis.auth.existingSecret"),
        ("production, Redis default user", merge(prod, {"redis": {"auth": {"usernameKey": ""}}}), "usernameKey"),
        ("production, topic binding none", merge(prod, {"gateway": {"auth": {"topicBinding": "none"}}}), "topicBinding"),
        ("production, no NetworkPolicy", merge(prod, {"networkPolicy": {"enabled": False}}), "/networkPolicy/enabled"),
        ("production, proxy without trusted proxies",
         merge(prod, {"gateway": {"tls": {"mode": "proxy"}, "admin": {"enabled": False}, "trustedProxies": []}}),
         "trustedProxies"),
        ("production, Sentinel without WAIT", merge(prod, {"redis": {"waitReplicas": 0}}), "waitReplicas"),
        ("proxy mode with an http public URL", merge(defaults, merge(site, {"gateway": {"publicUrl": "http://hub.example"}})),
         "needs an https:// gateway.publicUrl"),
        ("admin API without the gateway's own TLS", merge(defaults, merge(site, {"gateway": {"admin": {"enabled": True}}})),
         "gateway.admin.enabled needs gateway.tls.mode=own"),
        ("a secret through extraConfig",
         merge(defaults, merge(site, {"gateway": {"extraConfig": {"FHIRCAST_TOPIC_KEY": "x" * 40}}})),
         "invalid propertyName 'FHIRCAST_TOPIC_KEY'"),
        ("image tag latest", merge(defaults, merge(site, {"image": {"tag": "latest"}})), "/image/tag"),
        ("Redis URL with credentials in hosts",
         merge(defaults, merge(site, {"redis": {"hosts": "user:pw@redis:6379"}})), "/redis/hosts"),
    ]
    for label, values, reason in cases:
        must_refuse(label, values, reason)
    print(f"chart: {len(cases)} value sets refused, each with its reason")

    if failures:
        print(f"chart: {len(failures)} check(s) failed:", file=sys.stderr)
        for failure in failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    print(f"chart: all checks passed in {time.monotonic() - started:.1f} s (rendered manifests in {OUT})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
