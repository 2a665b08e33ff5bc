"""Checks the fhircast-hub Helm chart offline; run through helm/check-chart.sh (make chart).

For the default values and for values-production.yaml (each with the example site facts
from tests/chart/site-example.yaml): schema validation, render, strict lint and strict
Kubernetes schema validation of the rendered manifests, then facts each must hold. Then
value sets that must refuse to render (production without TLS, …), each with the reason it
must give. Exits 1 on the first failed group, naming every failure.
"""

from __future__ import annotations

import copy
import json
import pathlib
import re
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
    # Round numbers of a million and more: Helm holds them as floats, which must not reach a
    # setting as 1e+06.
    "topics": {"nonCurrentContextUpdates": True, "retentionSeconds": 1000000},
    "gateway": {
        "tls": {"mode": "own", "existingSecret": "gw-tls"},
        "admin": {"enabled": True},
        "auth": {"jwksUrl": "https://smart.hospital.example/jwks", "algorithms": "RS256,ES256", "topicBinding": "owner",
                 "tokenTypePolicy": "strict", "jwksRefreshMinSeconds": 30, "weakTopics": "allow",
                 "introspection": {"enabled": True, "clientId": "fhircast-hub", "existingSecret": "smart-introspection",
                                   "key": "secret", "url": "https://smart.hospital.example/introspect",
                                   "cacheSeconds": 10}},
        "inputLimits": {"maxJsonDepth": 16, "maxEventsPerSubscription": 8, "maxContextEntries": 12,
                        "maxBundleEntries": 1000},
        "service": {"type": "LoadBalancer", "annotations": {"example.org/lb": "internal"}},
        "extraConfig": {"FHIRCAST_ACK_TIMEOUT_MS": 5000, "FHIRCAST_CORS_ORIGINS": "https://pacs.hospital.example",
                        "FHIRCAST_TOPIC_HISTORY_BYTES": 4194304},
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

# Several issuers (--issuers-file), one of them introspecting; rendered over the production
# overlay.
ISSUERS = {
    "gateway": {"auth": {
        "issuer": "",
        "issuers": [
            {"issuer": "https://smart.hospital.example", "algorithms": ["RS256", "RS384"],
             "introspection": {"clientId": "fhircast-hub", "existingSecret": "ehr-introspection",
                               "url": "https://smart.hospital.example/introspect", "cacheSeconds": 0}},
            {"issuer": "https://idp.radiology.example/realms/pacs",
             "jwksUrl": "https://idp.radiology.example/realms/pacs/certs", "audience": "fhircast-hub",
             "algorithms": ["ES256"], "topicClaim": "fhircast_topic", "leewaySeconds": 30,
             "tokenTypePolicy": "strict", "jwksRefreshMinSeconds": 300},
        ],
    }},
}
# Settings the chart renders for one issuer only; with --issuers-file the gateway refuses them.
SINGLE_ISSUER_SETTINGS = (
    "FHIRCAST_ISSUER", "FHIRCAST_JWKS_URL", "FHIRCAST_ALGORITHMS", "FHIRCAST_TOKEN_TYPE_POLICY",
    "FHIRCAST_JWKS_REFRESH_MIN_SECONDS", "FHIRCAST_INTROSPECTION_CLIENT_ID",
    "FHIRCAST_INTROSPECTION_CLIENT_SECRET_FILE", "FHIRCAST_INTROSPECTION_URL",
    "FHIRCAST_INTROSPECTION_CACHE_SECONDS",
)
# A setting whose name holds one of these words (FHIRCAST_TOPIC_KEY, …_CLIENT_CA, but not
# …_CACHE_SECONDS) must come from a Secret or name a mounted file; NOT_SECRETS hold none.
SECRET_WORDS = {"KEY", "TOKEN", "PASSWORD", "SECRET", "CERT", "CA"}
NOT_SECRETS = {"FHIRCAST_TOKEN_TYPE_POLICY"}

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
    for cm in by_kind(docs, "ConfigMap"):
        for key, value in (cm.get("data") or {}).items():
            check(not re.fullmatch(r"[0-9.]+e[+-][0-9]+", str(value)),
                  f"{label}: ConfigMap {cm['metadata']['name']}: {key} is a number in exponent form: {value}")
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
            if SECRET_WORDS & set(key.split("_")) and key not in NOT_SECRETS and not isinstance(value, dict):
                check(str(value).startswith("/etc/fhircast/"), f"{label}: {name}: {key} holds a literal, not a file path")
        check("FHIRCAST_EMBEDDED" not in env, f"{label}: {name}: never the embedded hub")
        url = str(env.get("FHIRCAST_REDIS_URL", ""))
        check(url.startswith("redis"), f"{label}: {name}: FHIRCAST_REDIS_URL set")
        check("@" not in url or url.split("://", 1)[1].split("@", 1)[0].endswith("$(REDIS_PASSWORD)"),
              f"{label}: {name}: Redis credentials only through $(REDIS_PASSWORD): {url}")


def gateway_parts(docs: list[dict]) -> tuple[dict, dict, dict, dict, dict]:
    """The gateway's Deployment, container, settings, mounts (by name) and volumes (by name)."""
    gw = named(docs, "Deployment", f"{RELEASE}-gateway")
    pod = gw["spec"]["template"]["spec"]
    c = pod["containers"][0]
    mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    return gw, c, settings(docs, gw, c), mounts, volumes


def token_facts(docs: list[dict], label: str) -> None:
    """Every rendering: the token, topic and input-limit settings reach the gateway, the
    issuers file or the single-issuer settings (never both), the introspection secret only
    from a Secret mounted read-only, and the nodes' subscriptions cap."""
    _, _, env, mounts, volumes = gateway_parts(docs)
    check(env.get("FHIRCAST_WEAK_TOPICS") in ("refuse", "allow"), f"{label}: gateway: FHIRCAST_WEAK_TOPICS set")
    for key in ("FHIRCAST_MAX_JSON_DEPTH", "FHIRCAST_MAX_EVENTS_PER_SUBSCRIPTION",
                "FHIRCAST_MAX_CONTEXT_ENTRIES", "FHIRCAST_MAX_BUNDLE_ENTRIES"):
        check(str(env.get(key, "")).isdigit(), f"{label}: gateway: {key} set: {env.get(key)}")
    if "FHIRCAST_ISSUERS_FILE" in env:
        for key in SINGLE_ISSUER_SETTINGS:
            check(key not in env, f"{label}: gateway: {key} next to FHIRCAST_ISSUERS_FILE (the gateway refuses it)")
    else:
        check(bool(env.get("FHIRCAST_ISSUER")), f"{label}: gateway: FHIRCAST_ISSUER set")
        check("issuers" not in mounts and "issuers" not in volumes, f"{label}: gateway: no issuers file mounted")
    intro = volumes.get("introspection-secret")
    check(("introspection-secret" in mounts) == (intro is not None), f"{label}: introspection volume mounted iff present")
    if intro is not None:
        check("secret" in intro and "configMap" not in intro, f"{label}: introspection secret from a Secret")
        check(mounts["introspection-secret"].get("readOnly") is True, f"{label}: introspection secret mounted read-only")
    for cm in by_kind(docs, "ConfigMap"):
        for key, value in (cm.get("data") or {}).items():
            check("client_secret_env" not in str(value) and '"client_secret"' not in str(value),
                  f"{label}: ConfigMap {cm['metadata']['name']}: {key} names the introspection secret other than by file")
    sts = named(docs, "StatefulSet", f"{RELEASE}-node")
    node_env = settings(docs, sts, sts["spec"]["template"]["spec"]["containers"][0])
    check(str(node_env.get("FHIRCAST_MAX_SUBSCRIPTIONS_PER_CLIENT", "")).isdigit(),
          f"{label}: hub nodes: FHIRCAST_MAX_SUBSCRIPTIONS_PER_CLIENT set")


def options_facts(docs: list[dict]) -> None:
    label = "options"
    common_facts(docs, label)
    token_facts(docs, label)
    _, _, env, mounts, volumes = gateway_parts(docs)
    expected = {
        "FHIRCAST_TOKEN_TYPE_POLICY": "strict",
        "FHIRCAST_JWKS_REFRESH_MIN_SECONDS": "30",
        "FHIRCAST_WEAK_TOPICS": "allow",
        "FHIRCAST_INTROSPECTION_CLIENT_ID": "fhircast-hub",
        "FHIRCAST_INTROSPECTION_CLIENT_SECRET_FILE": "/etc/fhircast/introspection/secret",
        "FHIRCAST_INTROSPECTION_URL": "https://smart.hospital.example/introspect",
        "FHIRCAST_INTROSPECTION_CACHE_SECONDS": "10",
        "FHIRCAST_MAX_JSON_DEPTH": "16",
        "FHIRCAST_MAX_EVENTS_PER_SUBSCRIPTION": "8",
        "FHIRCAST_MAX_CONTEXT_ENTRIES": "12",
        "FHIRCAST_MAX_BUNDLE_ENTRIES": "1000",
        "FHIRCAST_TOPIC_HISTORY_BYTES": "4194304",
    }
    for key, value in expected.items():
        check(env.get(key) == value, f"{label}: gateway: {key} = {value!r}, not {env.get(key)!r}")
    check("FHIRCAST_ISSUERS_FILE" not in env, f"{label}: no issuers file with one issuer")
    intro = volumes.get("introspection-secret", {})
    check(intro.get("secret", {}).get("secretName") == "smart-introspection",
          f"{label}: introspection secret volume from Secret smart-introspection: {intro}")
    check(mounts.get("introspection-secret", {}).get("mountPath") == "/etc/fhircast/introspection",
          f"{label}: introspection secret mounted at /etc/fhircast/introspection")


def issuers_facts(docs: list[dict]) -> None:
    label = "issuers"
    production_facts(docs, label)
    token_facts(docs, label)
    _, _, env, mounts, volumes = gateway_parts(docs)
    check(env.get("FHIRCAST_ISSUERS_FILE") == "/etc/fhircast/issuers/issuers.json",
          f"{label}: gateway: FHIRCAST_ISSUERS_FILE: {env.get('FHIRCAST_ISSUERS_FILE')}")
    check(env.get("FHIRCAST_AUDIENCE") == "https://fhircast.hospital.example/api/hub",
          f"{label}: --audience stays, as the default of entries naming none")
    check(env.get("FHIRCAST_WEAK_TOPICS") == "refuse", f"{label}: weak topics refused by default")
    check(mounts.get("issuers", {}).get("mountPath") == "/etc/fhircast/issuers"
          and mounts["issuers"].get("readOnly") is True, f"{label}: issuers file mounted read-only")
    check(volumes.get("issuers", {}).get("configMap", {}).get("name") == f"{RELEASE}-gateway-issuers",
          f"{label}: issuers volume from the ConfigMap {RELEASE}-gateway-issuers")
    check(volumes.get("introspection-secret", {}).get("secret", {}).get("secretName") == "ehr-introspection",
          f"{label}: the introspecting issuer's secret from Secret ehr-introspection")
    cm = named(docs, "ConfigMap", f"{RELEASE}-gateway-issuers")
    try:
        document = json.loads(cm["data"]["issuers.json"])
    except (KeyError, ValueError) as err:
        failures.append(f"{label}: issuers.json is not JSON: {err}")
        return
    expected = {"issuers": [
        {"issuer": "https://smart.hospital.example", "algorithms": ["RS256", "RS384"],
         "introspection": {"client_id": "fhircast-hub",
                           "client_secret_file": "/etc/fhircast/introspection/client-secret",
                           "endpoint": "https://smart.hospital.example/introspect", "cache_seconds": 0}},
        {"issuer": "https://idp.radiology.example/realms/pacs",
         "jwks_url": "https://idp.radiology.example/realms/pacs/certs", "audience": "fhircast-hub",
         "algorithms": ["ES256"], "topic_claim": "fhircast_topic", "leeway_seconds": 30,
         "token_type_policy": "strict", "jwks_refresh_min_seconds": 300},
    ]}
    check(document == expected, f"{label}: issuers.json in the file format of docs/issuers.md:\n{document}")


def default_facts(docs: list[dict]) -> None:
    label = "values.yaml"
    common_facts(docs, label)
    token_facts(docs, label)
    _, _, env, _, volumes = gateway_parts(docs)
    defaults = {"FHIRCAST_WEAK_TOPICS": "refuse", "FHIRCAST_MAX_JSON_DEPTH": "64",
                "FHIRCAST_MAX_EVENTS_PER_SUBSCRIPTION": "64", "FHIRCAST_MAX_CONTEXT_ENTRIES": "32",
                "FHIRCAST_MAX_BUNDLE_ENTRIES": "200"}
    for key, value in defaults.items():
        check(env.get(key) == value, f"{label}: gateway: {key} = {value!r} (the gateway's default), not {env.get(key)!r}")
    for key in ("FHIRCAST_TOKEN_TYPE_POLICY", "FHIRCAST_JWKS_REFRESH_MIN_SECONDS", "FHIRCAST_ISSUERS_FILE",
                "FHIRCAST_INTROSPECTION_CLIENT_ID", "FHIRCAST_INTROSPECTION_CLIENT_SECRET_FILE"):
        check(key not in env, f"{label}: gateway: {key} left to the gateway's default")
    check("introspection-secret" not in volumes, f"{label}: no introspection secret by default")
    sts = named(docs, "StatefulSet", f"{RELEASE}-node")
    node_env = settings(docs, sts, sts["spec"]["template"]["spec"]["containers"][0])
    check(node_env.get("FHIRCAST_MAX_SUBSCRIPTIONS_PER_CLIENT") == "16",
          f"{label}: hub nodes: FHIRCAST_MAX_SUBSCRIPTIONS_PER_CLIENT 16")
    check(not [d for d in by_kind(docs, "Service") if d["metadata"]["name"].endswith("-admin")],
          f"{label}: no admin Service when the admin API is off")
    sts = named(docs, "StatefulSet", f"{RELEASE}-node")
    env = settings(docs, sts, sts["spec"]["template"]["spec"]["containers"][0])
    check(env.get("FHIRCAST_GRPC_INSECURE_ALLOW") == "true",
          f"{label}: without mutual TLS the nodes run with --grpc-insecure-allow")
    check(len(by_kind(docs, "NetworkPolicy")) == 2, f"{label}: NetworkPolicies on by default")


def production_facts(docs: list[dict], label: str = "values-production.yaml") -> None:
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
        ("options", merge(site, OPTIONS), options_facts),
        ("issuers", merge(production, merge(site, ISSUERS)), issuers_facts),
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
    site_values = merge(defaults, site)

    def gw(over: dict) -> dict:
        return merge(site_values, {"gateway": over})

    def with_issuers(entries: list, **auth) -> dict:
        return gw({"auth": {"issuer": "", "issuers": entries, **auth}})

    intro = {"clientId": "fhircast-hub", "existingSecret": "ehr-introspection"}
    two = [{"issuer": "https://a.example"}, {"issuer": "https://b.example"}]
    cases += [
        ("weakTopics maybe", gw({"auth": {"weakTopics": "maybe"}}), "/gateway/auth/weakTopics"),
        ("tokenTypePolicy paranoid", gw({"auth": {"tokenTypePolicy": "paranoid"}}), "/gateway/auth/tokenTypePolicy"),
        ("jwksRefreshMinSeconds 0", gw({"auth": {"jwksRefreshMinSeconds": 0}}), "/gateway/auth/jwksRefreshMinSeconds"),
        ("maxJsonDepth 65", gw({"inputLimits": {"maxJsonDepth": 65}}), "/gateway/inputLimits/maxJsonDepth"),
        ("maxEventsPerSubscription 0", gw({"inputLimits": {"maxEventsPerSubscription": 0}}),
         "/gateway/inputLimits/maxEventsPerSubscription"),
        ("maxContextEntries 257", gw({"inputLimits": {"maxContextEntries": 257}}), "/gateway/inputLimits/maxContextEntries"),
        ("maxBundleEntries 1001", gw({"inputLimits": {"maxBundleEntries": 1001}}), "/gateway/inputLimits/maxBundleEntries"),
        ("introspection with no secret name", gw({"auth": {"introspection": {"enabled": True, "clientId": "hub"}}}),
         "gateway.auth.introspection.enabled needs gateway.auth.introspection.existingSecret"),
        ("introspection with no client id", gw({"auth": {"introspection": {"enabled": True, "existingSecret": "s"}}}),
         "gateway.auth.introspection.enabled needs gateway.auth.introspection.clientId"),
        ("introspection cached 61 s", gw({"auth": {"introspection": {"enabled": True, **intro, "cacheSeconds": 61}}}),
         "/gateway/auth/introspection/cacheSeconds"),
        ("introspection over http", gw({"auth": {"introspection": {"enabled": True, **intro, "url": "http://idp/introspect"}}}),
         "/gateway/auth/introspection/url"),
        ("introspection secret as a value",
         gw({"auth": {"introspection": {"enabled": True, **intro, "clientSecret": "s3cret"}}}), "clientSecret"),
        ("no issuer at all", gw({"auth": {"issuer": ""}}), "gateway.auth.issuer is required"),
        ("issuers next to issuer", merge(with_issuers(two), {"gateway": {"auth": {"issuer": "https://a.example"}}}),
         "gateway.auth.issuers excludes gateway.auth.issuer"),
        ("issuers next to tokenTypePolicy", with_issuers(two, tokenTypePolicy="strict"),
         "gateway.auth.issuers excludes gateway.auth.tokenTypePolicy"),
        ("issuers next to jwksRefreshMinSeconds", with_issuers(two, jwksRefreshMinSeconds=30),
         "gateway.auth.issuers excludes gateway.auth.jwksRefreshMinSeconds"),
        ("issuers next to introspection flags", with_issuers(two, introspection={"enabled": True, **intro}),
         "gateway.auth.issuers excludes gateway.auth.introspection.enabled"),
        ("issuer listed twice", with_issuers([two[0], two[0]]), "lists issuer https://a.example twice"),
        ("two introspecting issuers", with_issuers([{**e, "introspection": intro} for e in two]),
         "only one issuer may use introspection"),
        ("issuer without an audience", merge(with_issuers(two), {"gateway": {"auth": {"audience": ""}}}),
         "issuer https://a.example names no audience"),
        ("issuer introspection with no secret name", with_issuers([{**two[0], "introspection": {"clientId": "hub"}}]),
         "missing property 'existingSecret'"),
        ("issuer introspection secret as a file path",
         with_issuers([{**two[0], "introspection": {**intro, "clientSecretFile": "/tmp/s"}}]), "clientSecretFile"),
        ("issuer with an HMAC algorithm", with_issuers([{**two[0], "algorithms": ["HS256"]}]),
         "/gateway/auth/issuers/0/algorithms/0"),
        ("issuer leeway 301 s", with_issuers([{**two[0], "leewaySeconds": 301}]), "/gateway/auth/issuers/0/leewaySeconds"),
        ("issuer tokenTypePolicy paranoid", with_issuers([{**two[0], "tokenTypePolicy": "paranoid"}]),
         "/gateway/auth/issuers/0/tokenTypePolicy"),
        ("issuer with a misspelt member", with_issuers([{**two[0], "audiance": "x"}]), "audiance"),
        ("introspection secret path through extraConfig",
         gw({"extraConfig": {"FHIRCAST_INTROSPECTION_CLIENT_SECRET_FILE": "/tmp/s"}}),
         "invalid propertyName 'FHIRCAST_INTROSPECTION_CLIENT_SECRET_FILE'"),
        ("weak topics through extraConfig", gw({"extraConfig": {"FHIRCAST_WEAK_TOPICS": "allow"}}),
         "invalid propertyName 'FHIRCAST_WEAK_TOPICS'"),
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
