#!/usr/bin/env bash
# Fetch the Zero to JupyterHub chart's values schema and default values for the
# chart version hub/zero-to-jupyterhub.values.yaml is written for, into
# hub/vendor/z2jh-<version>/ (values.schema.json, values.yaml, LICENSE,
# SOURCE.md), where tests/test_z2jh.py validates the values against them.
#
#   bash hub/vendor/get-z2jh-chart.sh            # then commit hub/vendor/z2jh-4.4.0/
#
# Needs the network (hub.jupyter.org, github.com) and a Python with PyYAML
# (PYTHON, default .venv/bin/python, as `make venv` makes it); the test itself
# needs neither.
# The chart tarball is checked against the sha256 digest the chart repository's
# index lists for that version.  The chart packages values.schema.json, which
# the chart's build generates from jupyterhub/values.schema.yaml in the
# zero-to-jupyterhub-k8s repository (tools/generate-json-schema.py: the same
# schema without its "description" texts).
set -euo pipefail
VERSION="${1:-4.4.0}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="$HERE/z2jh-$VERSION"
REPO_URL="${Z2JH_CHART_REPO:-https://hub.jupyter.org/helm-chart}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

curl -fsSL "$REPO_URL/index.yaml" -o "$work/index.yaml"
PYTHON="${PYTHON:-$HERE/../../.venv/bin/python}"
digest="$("$PYTHON" - "$work/index.yaml" "$VERSION" <<'PY'
import sys, yaml
index = yaml.safe_load(open(sys.argv[1]))
entry = next(e for e in index["entries"]["jupyterhub"] if e["version"] == sys.argv[2])
print(entry["digest"])
PY
)"
curl -fsSL "$REPO_URL/jupyterhub-$VERSION.tgz" -o "$work/chart.tgz"
echo "$digest  $work/chart.tgz" | sha256sum -c -
tar -xzf "$work/chart.tgz" -C "$work" jupyterhub/values.schema.json jupyterhub/values.yaml
mkdir -p "$OUT"
cp "$work/jupyterhub/values.schema.json" "$work/jupyterhub/values.yaml" "$OUT/"
curl -fsSL "${Z2JH_LICENSE_URL:-https://raw.githubusercontent.com/jupyterhub/zero-to-jupyterhub-k8s/$VERSION/LICENSE}" \
    -o "$OUT/LICENSE"
cat > "$OUT/SOURCE.md" <<MD
# Zero to JupyterHub chart $VERSION: values schema and default values

- \`values.schema.json\`, \`values.yaml\`: from the packaged chart
  \`$REPO_URL/jupyterhub-$VERSION.tgz\` (sha256 \`$digest\`, as the chart
  repository's index lists it), unchanged.  The chart's build generates
  \`values.schema.json\` from \`jupyterhub/values.schema.yaml\` of
  https://github.com/jupyterhub/zero-to-jupyterhub-k8s at tag $VERSION
  (\`tools/generate-json-schema.py\` drops the \`description\` texts).
- \`LICENSE\`: the repository's BSD 3-Clause licence, which covers both files.
- Fetched by \`hub/vendor/get-z2jh-chart.sh $VERSION\`; used by
  \`tests/test_z2jh.py\` to validate \`hub/zero-to-jupyterhub.values.yaml\`.
MD
echo "wrote $OUT"
