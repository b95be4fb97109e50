#!/usr/bin/env bash
# make console: builds the control room's web console (console/) to console/dist/index.html
# with the locked dependencies (npm ci) and Vite. Does nothing when dist/ is newer than
# every source file and the lockfile. Node.js 18 (Debian 12) or newer.
set -euo pipefail
cd "$(dirname "$0")/../console"
out=dist/index.html
if [ -f "$out" ] && [ -z "$(find src index.html package.json package-lock.json tsconfig.json vite.config.ts -newer "$out" | head -1)" ]; then
  echo "console: $out is up to date"
  exit 0
fi
echo "console: npm ci (node $(node --version), npm $(npm --version))"
npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
echo "console: built $(pwd)/$out"
