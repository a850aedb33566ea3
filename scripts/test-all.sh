#!/usr/bin/env bash
# `make test`: every check, each stage run even when an earlier one failed, one
#   STAGE: N passed, N failed, N skipped (S s)
# line per stage, every skipped test named, and a total at the end. The last
# stage, `leftovers`, fails when the run left a pm2 daemon, an app process, a
# container or a temp folder behind (scripts/leftovers.py), pass or fail.
# Under CI=true a test skipped for a missing tool is a failure (tests/conftest.py)
# and Molecule runs against an empty container store (scripts/test-molecule.sh).
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 1
stages=(lint sanity pytest molecule)
[ -n "${DBFIX_STAGES:-}" ] && read -r -a stages <<<"$DBFIX_STAGES"
mkdir -p .cache
snap=.cache/leftovers-snapshot.json
.venv/bin/python scripts/leftovers.py snapshot "$snap"
summary=()
skips=()
rc=0
t_all=$(date +%s)
declare -A line_of skips_of
record_stage() {  # record_stage NAME LOG EXIT_CODE START END: keep its summary line and skips
  local stage=$1 log=$2 src=$3 start=$4 end=$5 line s
  line=$(grep -E "^$stage: [0-9]+ passed, [0-9]+ failed" "$log" | tail -n1)
  [ -n "$line" ] || line="$stage: 0 passed, 1 failed"
  [[ $line == *skipped* ]] || line="$line, 0 skipped"
  if [ "$src" -ne 0 ]; then
    rc=1
    # A stage that failed must not read as passed, whatever its counter said.
    if [[ $line =~ ^$stage:\ [0-9]+\ passed,\ 0\ failed ]]; then line=${line/ 0 failed/ 1 failed}; fi
  fi
  skips_of[$stage]=""
  while IFS= read -r s; do skips_of[$stage]+="$stage: ${s#skip: }"$'\n'; done < <(grep -E '^skip: ' "$log")
  line_of[$stage]="$line ($((end - start)) s)"
  echo "== ${line_of[$stage]}"
  rm -f "$log"
}
run_stage() {  # run_stage NAME COMMAND...: its output live (tee) and in its log
  local stage=$1 start log src; shift
  start=$(date +%s)
  log=$(mktemp "$here/.cache/stage-$stage.XXXXXX")
  "$@" 2>&1 | tee "$log"
  src=${PIPESTATUS[0]}
  record_stage "$stage" "$log" "$src" "$start" "$(date +%s)"
}
# DBFIX_OVERLAP=1: the molecule stage (image build, then containers) runs in the
# background next to the other stages. Its output goes to its own log, printed
# whole when it has ended; its duration is its own. Off by default: on a 2-core
# machine the load of both at once (load ~13) doubled Molecule's scenario times
# and made pm2/health waits in the containers run into their deadlines.
bg_stage="" bg_log="" bg_pid="" bg_start=0
start_bg_stage() {  # start_bg_stage NAME COMMAND...
  bg_stage=$1; shift
  bg_start=$(date +%s)
  bg_log=$(mktemp "$here/.cache/stage-$bg_stage.XXXXXX")
  # Its own session, so an interrupted run can stop it and everything it started.
  # shellcheck disable=SC2016  # expanded by the inner bash
  setsid bash -c '"$@" >"$0" 2>&1; echo "$? $(date +%s)" >"$0.end"' "$bg_log" "$@" </dev/null &
  bg_pid=$!
  echo "== $bg_stage: started in the background (its output follows when it ends)"
}
finish_bg_stage() {
  [ -n "$bg_pid" ] || return 0
  local src=1 end
  wait "$bg_pid"
  read -r src end <"$bg_log.end" || { src=1; end=$(date +%s); }
  rm -f "$bg_log.end"
  echo "== $bg_stage: output"
  cat "$bg_log"
  record_stage "$bg_stage" "$bg_log" "$src" "$bg_start" "$end"
  bg_pid=""
}
stop_bg_stage() {  # stop_bg_stage EXIT_CODE: stop the background stage (its whole session), exit
  if [ -n "$bg_pid" ]; then kill -TERM -- "-$bg_pid" 2>/dev/null; fi
  exit "$1"
}
trap 'stop_bg_stage 130' INT TERM
overlap=${DBFIX_OVERLAP:-0}
if [ "$overlap" != 0 ] && ((${#stages[@]} > 1)) && [[ " ${stages[*]} " == *" molecule "* ]]; then
  start_bg_stage molecule bash scripts/test-molecule.sh
fi
for stage in "${stages[@]}"; do
  case $stage in
    lint) run_stage lint bash scripts/test-lint.sh ;;
    sanity) run_stage sanity bash scripts/sanity.sh ;;
    pytest) run_stage pytest bash scripts/test-pytest.sh ;;
    molecule) [ -n "$bg_pid" ] || run_stage molecule bash scripts/test-molecule.sh ;;
    *) echo "unknown stage $stage"; stop_bg_stage 2 ;;
  esac
done
finish_bg_stage
trap - INT TERM
# leftovers: last, once every other stage has ended.
run_stage leftovers .venv/bin/python scripts/leftovers.py check "$snap"
rm -f "$snap"
for stage in "${stages[@]}" leftovers; do
  summary+=("${line_of[$stage]}")
  while IFS= read -r s; do [ -n "$s" ] && skips+=("$s"); done <<<"${skips_of[$stage]}"
done
echo
echo "==== make test summary ===="
tp=0 tf=0 ts=0
for l in "${summary[@]}"; do
  echo "$l"
  [[ $l =~ ^[a-z]+:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed,\ ([0-9]+)\ skipped ]] || continue
  tp=$((tp + BASH_REMATCH[1])); tf=$((tf + BASH_REMATCH[2])); ts=$((ts + BASH_REMATCH[3]))
done
if ((${#skips[@]})); then
  echo "skipped tests:"
  printf '  %s\n' "${skips[@]}"
fi
echo "wall time: $(( $(date +%s) - t_all )) s"
echo "total: $tp passed, $tf failed, $ts skipped"
exit "$rc"
