#!/usr/bin/env bash
# Fails, listing file:line, when a C# line of the repository is longer than the limit (default 140, as .editorconfig's
# max_line_length says; dotnet format does not enforce it).
# Usage: scripts/check-line-length.sh [LIMIT]
set -euo pipefail
limit=${1:-140}
cd "$(dirname "$0")/.."
long=$(git ls-files -co --exclude-standard '*.cs' | xargs -r awk -v limit="$limit" 'length > limit { printf "%s:%d: %d characters\n", FILENAME, FNR, length }')
if [ -n "$long" ]; then
  echo "$long"
  echo "check-line-length: $(echo "$long" | wc -l) lines longer than $limit characters" >&2
  exit 1
fi
