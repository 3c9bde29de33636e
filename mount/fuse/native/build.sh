#!/usr/bin/env bash
# Builds the native FUSE addon from source with node-gyp, against the Node headers already on
# this machine (no downloads). Exit status non-zero when it did not build; the log is in build.log.
set -uo pipefail
cd "$(dirname "$0")"
ROOT="$(cd ../../.. && pwd)"
NODE_GYP="$ROOT/node_modules/node-gyp/bin/node-gyp.js"
[ -f "$NODE_GYP" ] || NODE_GYP="$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"
NODEDIR="$(npm config get nodedir 2>/dev/null || true)"
case "$NODEDIR" in ""|undefined|null) NODEDIR="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")" ;; esac
if node "$NODE_GYP" rebuild --nodedir="$NODEDIR" --loglevel=error >build.log 2>&1; then
  rm -f build.log
else
  exit 1
fi
