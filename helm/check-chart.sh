#!/usr/bin/env bash
# Renders, lints and validates the Helm chart helm/fhircast-hub without a helm binary or a
# cluster (Debian has no helm package): PyPI helm-python-sdk embeds the Helm Go SDK (render,
# strict lint, values.schema.json), PyPI kubernetes-validate checks the rendered manifests
# against the Kubernetes API schemas. Both are installed once into helm/.venv-helm
# (gitignored); later runs need no network. The checks themselves are in check_chart.py.
#
#   helm/check-chart.sh            # or: make chart
#   PYTHON=python3.12 helm/check-chart.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv-helm"
PYTHON="${PYTHON:-python3}"
HELM_SDK_VERSION=0.2.2
KUBE_VALIDATE_VERSION=1.37.0

installed() {
  "$VENV/bin/python" - "$HELM_SDK_VERSION" "$KUBE_VALIDATE_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if (version("helm-python-sdk"), version("kubernetes-validate")) == tuple(sys.argv[1:3]) else 1)
EOF
}

if ! [ -x "$VENV/bin/python" ] || ! installed; then
  command -v "$PYTHON" >/dev/null || { echo "chart: $PYTHON is missing (apt-get install -y python3 python3-venv)"; exit 1; }
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { echo "chart: helm-python-sdk needs Python >= 3.10 ($PYTHON is older; set PYTHON=)"; exit 1; }
  echo "chart: installing helm-python-sdk==$HELM_SDK_VERSION and kubernetes-validate==$KUBE_VALIDATE_VERSION into $VENV (once; about 390 MB on disk)"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV" || { echo "chart: python3 -m venv failed (apt-get install -y python3-venv)"; exit 1; }
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "helm-python-sdk==$HELM_SDK_VERSION" "kubernetes-validate==$KUBE_VALIDATE_VERSION" \
    || { rm -rf "$VENV"; echo "chart: pip could not install the chart tools from PyPI"; exit 1; }
fi

exec "$VENV/bin/python" "$HERE/check_chart.py" "$@"
