#!/usr/bin/env bash
# ctest ci_example_aiosmtpd: the example CI job (ci/conformance-github-actions.yml) as a user runs
# it, on a free loopback port instead of 2525, in a fresh folder. SMTPCONFORM names the binary.
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/refsmtp-ci-example-XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$root/ci/smtp-conformance.sh" \
  --start "/usr/bin/python3 -m aiosmtpd -n -l 127.0.0.1:$port -c aiosmtpd.handlers.Mailbox mail" \
  --target "127.0.0.1:$port" --maildir mail \
  --profile "$root/ci/aiosmtpd.profile" --expect "$root/ci/aiosmtpd-baseline.txt"
