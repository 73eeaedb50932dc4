#!/usr/bin/env bash
# Regenerates tools/e2b-local/generated/ from E2B's public API definitions, with the official
# generators from npm (buf + protoc-gen-es for the protobuf services, openapi-typescript for the
# HTTP APIs). Nothing in generated/ is written by hand.
#   tools/e2b-local/generate.sh <checkout of github.com/e2b-dev/E2B> [commit]
# The definitions live in its spec/ folder: envd/process/process.proto,
# envd/filesystem/filesystem.proto, envd/envd.yaml and openapi.yml.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
e2b="${1:?usage: generate.sh <E2B repository checkout> [commit]}"
commit="${2:-$(git -C "$e2b" rev-parse HEAD 2>/dev/null || echo unknown)}"
bin="$here/../../node_modules/.bin"
out="$here/generated"
rm -rf "$out"
mkdir -p "$out"
(cd "$here" && PATH="$bin:$PATH" "$bin/buf" generate "$e2b/spec/envd" --template buf.gen.yaml)
"$bin/openapi-typescript" "$e2b/spec/openapi.yml" -o "$out/api.ts"
"$bin/openapi-typescript" "$e2b/spec/envd/envd.yaml" -o "$out/envd-http.ts"
for file in $(find "$out" -name '*.ts' | sort); do
  rel="${file#"$out"/}"
  { printf '// Generated from the public E2B API definitions (github.com/e2b-dev/E2B, spec/, commit %s)\n' "$commit"
    printf '// by tools/e2b-local/generate.sh. Do not edit.\n'
    cat "$file"; } >"$file.tmp"
  mv "$file.tmp" "$file"
  echo "generated $rel"
done
