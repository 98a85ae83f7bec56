#!/usr/bin/env bash
# Install the independent SMART server (oidc-provider, pinned in package.json) into the cache, never the repo.
# Usage: scripts/independent-smart/install.sh    Prints the install folder.
# Env: ITB_INDEPENDENT_SMART_DIR (default ~/.cache/itb/independent-smart).
# Offline-safe: when the installed package.json matches ours and node_modules is complete, nothing is fetched.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="${ITB_INDEPENDENT_SMART_DIR:-$HOME/.cache/itb/independent-smart}"
command -v node >/dev/null || { echo "node is not installed" >&2; exit 3; }
command -v npm >/dev/null || { echo "npm is not installed" >&2; exit 3; }
mkdir -p "$dest"
cp "$here/server.mjs" "$dest/server.mjs"  # ESM resolves packages next to the importing file
if ! cmp -s "$here/package.json" "$dest/package.json" || [[ ! -f "$dest/node_modules/oidc-provider/package.json" ]]; then
  cp "$here/package.json" "$dest/package.json"
  (cd "$dest" && npm install --no-audit --no-fund --no-save --loglevel=error >&2)
fi
echo "$dest"
