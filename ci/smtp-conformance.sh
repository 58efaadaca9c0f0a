#!/usr/bin/env bash
# Runs refsmtp's conformance suites against an SMTP server in a CI job and keeps the reports.
#
#   ci/smtp-conformance.sh [--start 'COMMAND'] --target HOST:PORT [smtpconform options...]
#
#   --start 'COMMAND'   start the server under test in the background first (stopped at the end)
#   --target HOST:PORT  where it listens; every other option goes to smtpconform as it is
#                       (--profile FILE, --expect BASELINE, --maildir DIR, --tls starttls, ...)
#
# Builds smtpconform unless $SMTPCONFORM names one (scripts/deps --runner, then the 'runner'
# preset: OpenSSL, CLI11 and nlohmann-json, nothing else), waits up to $WAIT_SECONDS (default 60)
# for the target to greet with 220, runs every suite, and writes results.xml (JUnit),
# results.json (with transcripts) and results.txt into $REPORTS (default ./smtp-conformance).
# Exit status: smtpconform's (0: no MUST case failed, or every result as --expect says; 1: one
# did; 2: usage; 3: the target cannot be reached).
set -euo pipefail

refsmtp=$(cd "$(dirname "$0")/.." && pwd)
start="" target="" args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --start) start=$2; shift 2 ;;
    --target) target=$2; args+=("$1" "$2"); shift 2 ;;
    --target=*) target=${1#--target=}; args+=("$1"); shift ;;
    --start=*) start=${1#--start=}; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ -z "$target" ]; then
  echo "ci/smtp-conformance.sh: give --target HOST:PORT (see --help)" >&2
  exit 2
fi
host=${target%:*} port=${target##*:}
host=${host#[}
host=${host%]}

smtpconform=${SMTPCONFORM:-}
if [ -z "$smtpconform" ]; then
  "$refsmtp/scripts/deps" --runner
  (cd "$refsmtp" && cmake --preset runner >/dev/null && cmake --build --preset runner --target smtpconform)
  smtpconform=$refsmtp/build/runner/conformance/runner/smtpconform
fi

# The server runs in its own process group (setsid), so COMMAND may be any shell command line
# ("cd srv && ./mtad") and stopping it stops everything it started.
server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then
    kill -- "-$server_pid" 2>/dev/null || kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
}
trap stop_server EXIT
if [ -n "$start" ]; then
  setsid bash -c "$start" &
  server_pid=$!
fi

# Wait for the greeting: a server that accepts the connection before it is ready is not ready.
ready=no
for _ in $(seq "$(( ${WAIT_SECONDS:-60} * 4 ))"); do
  if [ -n "$server_pid" ] && ! kill -0 "$server_pid" 2>/dev/null; then
    echo "ci/smtp-conformance.sh: the server under test exited before it listened: $start" >&2
    exit 3
  fi
  # (each attempt bounded: a connect to a host that drops packets would otherwise block)
  if timeout 5 bash -c ': <>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null && { exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null; then
    line=""
    read -r -t 5 line <&3 || true
    printf 'QUIT\r\n' >&3 2>/dev/null || true
    exec 3>&- 3<&-
    if [[ "$line" == 220* ]]; then ready=yes; break; fi
  fi
  sleep 0.25
done
if [ "$ready" != yes ]; then
  echo "ci/smtp-conformance.sh: no 220 greeting from $target within ${WAIT_SECONDS:-60} s" >&2
  exit 3
fi

reports=${REPORTS:-smtp-conformance}
mkdir -p "$reports"
status=0
"$smtpconform" "${args[@]}" --report "junit=$reports/results.xml" --report "json=$reports/results.json" \
  --report "text=$reports/results.txt" "$refsmtp/conformance/suites" || status=$?
echo "ci/smtp-conformance.sh: reports in $reports/ (results.xml, results.json, results.txt); exit $status" >&2
exit "$status"
