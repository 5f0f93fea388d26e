#!/usr/bin/env bash
# scripts/fuzz.sh TARGET|all [SECONDS]: fuzzes one target (romana-fuzz list names them), or every target two at a time,
# with AFL++ for SECONDS each (default 60), starting from Romana.Fuzz/corpus/TARGET with the tokens of
# Romana.Fuzz/dictionaries. It builds Romana.Fuzz in Release, copies the build to artifacts/fuzz/bin and instruments
# Romana's assemblies there with SharpFuzz (the local tool of .config/dotnet-tools.json), plus the parts of AWSSDK that
# read EC2's XML, so that AFL sees which branches an input takes.
# Findings go to artifacts/fuzz/TARGET/default/{crashes,hangs}; each one is replayed (romana-fuzz TARGET FILE) to show its
# exception. Exits 1 when any target found a crash (an exception other than the parser's own, or a FuzzFinding) or a hang
# (an input that ran longer than FUZZ_TIMEOUT_MS, default 2000).
#
# Needs afl-fuzz (Debian: afl++). Environment: FUZZ_JOBS (targets at once for "all", default 2), FUZZ_TIMEOUT_MS,
# FUZZ_KEEP=1 to go on from the queue of the previous run instead of the corpus, FUZZ_OUT (default artifacts/fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: scripts/fuzz.sh TARGET|all [SECONDS]" >&2; exit 2; }
[ $# -ge 1 ] || usage
target=$1
seconds=${2:-60}
[[ $seconds =~ ^[0-9]+$ ]] || usage
jobs=${FUZZ_JOBS:-2}
timeout_ms=${FUZZ_TIMEOUT_MS:-2000}
out=${FUZZ_OUT:-artifacts/fuzz}
build=$out/build
bin=$out/bin

command -v afl-fuzz >/dev/null || { echo "fuzz.sh: afl-fuzz not found (apt-get install afl++)" >&2; exit 2; }

# ---- build and instrument (once for all targets; again only when the build changed) ----------------------------------
instrument() {
  dotnet tool restore >/dev/null
  dotnet build Romana.Fuzz/Romana.Fuzz.csproj -c Release -o "$build" -v quiet -nologo >"$out/build.log" 2>&1 \
    || { cat "$out/build.log" >&2; exit 1; }
  if [ -f "$bin/.instrumented" ] && [ -z "$(find "$build" -newer "$bin/.instrumented" -type f -print -quit)" ]; then return; fi
  rm -rf "$bin"
  cp -r "$build" "$bin"
  # Romana's own code, whole; of AWSSDK, the XML unmarshalling of DescribeRouteTables and of errors.
  for assembly in romana.dll romana-cni.dll Romana.Contracts.dll Romana.Actors.dll; do
    dotnet sharpfuzz "$bin/$assembly" >/dev/null
  done
  dotnet sharpfuzz "$bin/AWSSDK.EC2.dll" \
    Amazon.EC2.Model.Internal.MarshallTransformations.DescribeRouteTables \
    Amazon.EC2.Model.Internal.MarshallTransformations.RouteTable \
    Amazon.EC2.Model.Internal.MarshallTransformations.RouteUnmarshaller \
    Amazon.EC2.Model.Internal.MarshallTransformations.TagUnmarshaller \
    Amazon.EC2.Internal.AmazonEC2ResponseUnmarshaller >/dev/null
  dotnet sharpfuzz "$bin/AWSSDK.Core.dll" Amazon.Runtime.Internal.Transform Amazon.Runtime.Internal.ErrorResponse >/dev/null
  touch "$bin/.instrumented"
}

# ---- one target -------------------------------------------------------------------------------------------------------
# Prints one line: the target, executions, executions per second, paths found, crashes, hangs; returns 1 on a finding.
fuzz_one() {
  local name=$1 findings=$out/$1 input=Romana.Fuzz/corpus/$1
  [ -d "$input" ] || { echo "fuzz.sh: no corpus $input" >&2; return 2; }
  [ "${FUZZ_KEEP:-}" = 1 ] && [ -d "$findings/default/queue" ] && input=-
  [ "$input" = - ] || rm -rf "$findings"
  mkdir -p "$findings"
  local dictionary=()
  case $name in
    cni-env) dictionary=(-x Romana.Fuzz/dictionaries/cni-env.dict) ;;
    ec2-query) dictionary=(-x Romana.Fuzz/dictionaries/query.dict) ;;
    ec2-response) dictionary=(-x Romana.Fuzz/dictionaries/xml.dict) ;;
    *) dictionary=(-x Romana.Fuzz/dictionaries/json.dict) ;;
  esac
  # dotnet is not instrumented itself (the assemblies are): skip AFL's binary check; no core dumps to wait for, no CPU
  # to pin (the machine is shared), no screen; a minute for the runtime to start on a busy machine.
  AFL_SKIP_BIN_CHECK=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_NO_UI=1 \
    AFL_FORKSRV_INIT_TMOUT=60000 \
    timeout $((seconds + 120)) afl-fuzz -V "$seconds" -t "$timeout_ms" -m none "${dictionary[@]}" -i "$input" -o "$findings" \
    -- dotnet "$bin/romana-fuzz.dll" "$name" >"$findings/afl.log" 2>&1 || true
  local stats=$findings/default/fuzzer_stats
  if [ ! -f "$stats" ]; then
    echo "fuzz.sh: $name: afl-fuzz did not start; the end of its log:" >&2
    tail -n 25 "$findings/afl.log" >&2
    return 1
  fi
  field() { sed -n "s/^$1 *: *//p" "$stats"; }
  local crashes hangs
  crashes=$(find "$findings/default/crashes" -type f -name 'id:*' 2>/dev/null | wc -l)
  hangs=$(find "$findings/default/hangs" -type f -name 'id:*' 2>/dev/null | wc -l)
  printf '%-16s %4s s  %9s execs  %7s/s  corpus %5s  crashes %s  hangs %s\n' "$name" "$(field run_time)" "$(field execs_done)" \
    "$(field execs_per_sec)" "$(field corpus_count)" "$crashes" "$hangs"
  [ "$crashes" -eq 0 ] && [ "$hangs" -eq 0 ] && return 0
  for file in "$findings"/default/crashes/id:* "$findings"/default/hangs/id:*; do
    [ -f "$file" ] || continue
    echo "  $file:"
    local replay=0
    timeout 20 dotnet "$build/romana-fuzz.dll" "$name" "$file" >"$findings/replay.log" 2>&1 || replay=$?
    sed -n '1,12p' "$findings/replay.log" | sed 's/^/    /'
    [ "$replay" -ne 124 ] || echo "    (still running after 20 s)"
  done
  return 1
}

mkdir -p "$out"
instrument
if [ "$target" = all ]; then
  names=$(dotnet "$build/romana-fuzz.dll" list | awk '{print $1}')
else
  dotnet "$build/romana-fuzz.dll" list | awk '{print $1}' | grep -qx "$target" \
    || { echo "fuzz.sh: no target '$target'; known: $(dotnet "$build/romana-fuzz.dll" list | awk '{print $1}' | xargs)" >&2; exit 2; }
  names=$target
fi

echo "fuzzing for $seconds s each (AFL++ $(afl-fuzz -h 2>&1 | sed -n 's/.*afl-fuzz++\([0-9a-z.]*\).*/\1/p' | head -n 1), timeout ${timeout_ms} ms):"
failed=0
running=0
pids=()
rm -f "$out"/*.summary "$out"/*.status
for name in $names; do
  (status=0; fuzz_one "$name" >"$out/$name.summary" 2>&1 || status=$?; echo "$status" >"$out/$name.status") &
  pids+=($!)
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait -n || true; running=$((running - 1)); fi
done
wait "${pids[@]}" 2>/dev/null || true
for name in $names; do
  cat "$out/$name.summary"
  [ "$(cat "$out/$name.status" 2>/dev/null || echo 1)" = 0 ] || failed=1
done
exit $failed
