#!/usr/bin/env bash
# Build the embedded HAPI FHIR JPA test server (scripts/hapi/pom.xml + src/) into the cache,
# once per content hash of its sources. Nothing is written inside the repository:
#   ${ITB_CACHE_DIR:-$HOME/.cache/itb}/hapi/<hash>/{itb-hapi-server.jar,lib/}
#   ${ITB_CACHE_DIR:-$HOME/.cache/itb}/hapi/current -> <hash>
# Maven's repository is the usual ~/.m2 unless ITB_MAVEN_REPO is set.
# Messages go to stderr; stdout prints only the directory of the built server.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${ITB_CACHE_DIR:-$HOME/.cache/itb}/hapi"
mkdir -p "$cache_root"

log() { printf '[hapi/build] %s\n' "$*" >&2; }

# Content hash of everything that goes into the build (file names and contents).
src_hash="$(
  cd "$here"
  { echo pom.xml; find src -type f | LC_ALL=C sort; } |
    while IFS= read -r f; do printf '%s\n' "$f"; sha256sum "$f"; done |
    sha256sum | cut -c1-16
)"
out="$cache_root/$src_hash"

# One build at a time (services.sh and parallel callers share the cache).
exec 9>"$cache_root/.lock"
flock 9

if [[ -f "$out/READY" ]]; then
  ln -sfn "$src_hash" "$cache_root/current"
  log "up to date: $out (sources hash $src_hash)"
  echo "$out"
  exit 0
fi

if ! command -v mvn >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1; then
  log "maven/JDK missing: apt-get install -y maven openjdk-17-jdk-headless"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq maven openjdk-17-jdk-headless >&2
fi

work="$cache_root/build-$src_hash"
rm -rf "$work"
mkdir -p "$work"
cp "$here/pom.xml" "$work/"
cp -r "$here/src" "$work/"

mvn_args=(-q -B -DskipTests)
if [[ -n "${ITB_MAVEN_REPO:-}" ]]; then
  mvn_args+=("-Dmaven.repo.local=$ITB_MAVEN_REPO")
fi

log "building HAPI FHIR test server (sources hash $src_hash) in $work ..."
start=$(date +%s)
if ! (cd "$work" && mvn "${mvn_args[@]}" package >"$work/mvn.log" 2>&1); then
  log "maven build FAILED; last lines of $work/mvn.log:"
  tail -n 60 "$work/mvn.log" >&2
  exit 1
fi

rm -rf "$out.tmp"
mkdir -p "$out.tmp"
cp "$work/target/itb-hapi-server.jar" "$out.tmp/"
cp -r "$work/target/lib" "$out.tmp/lib"
touch "$out.tmp/READY"
rm -rf "$out"
mv "$out.tmp" "$out"
ln -sfn "$src_hash" "$cache_root/current"
rm -rf "$work"

# Drop builds of older sources.
for d in "$cache_root"/*/; do
  d="${d%/}"
  [[ "$(basename "$d")" == "$src_hash" ]] && continue
  [[ -f "$d/READY" || "$(basename "$d")" == build-* ]] && rm -rf "$d"
done

log "built in $(( $(date +%s) - start ))s: $out ($(find "$out/lib" -name "*.jar" | wc -l) jars)"
echo "$out"
