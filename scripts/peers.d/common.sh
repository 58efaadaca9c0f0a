# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154  # globals set here are read by the peer files; prog and the timeouts come from scripts/peers
# scripts/peers: helpers every peer uses (sourced by scripts/peers).
shopt -u patsub_replacement 2>/dev/null || true  # "&" in a value is literal

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}

die_usage() {
  echo "$prog: $*" >&2
  echo "Try '$prog --help'." >&2
  exit 2
}

fail() {
  echo "$prog: $*" >&2
  exit 1
}

# --- helpers ----------------------------------------------------------------------------------

# Prints a TCP port on 127.0.0.1 that is free right now.
free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
    return
  fi
  local port _
  for _ in $(seq 1 100); do
    port=$((20000 + RANDOM % 40000))
    if ! port_answers "$port"; then
      echo "$port"
      return
    fi
  done
  fail "no free TCP port found on 127.0.0.1"
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_answers() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# True if 127.0.0.1:$1 greets with an SMTP/LMTP "220" banner (then says QUIT).
lmtp_greets() {
  local line=""
  # Braces: the 2>/dev/null must silence a failed connect, not stay on the shell's stderr.
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  IFS= read -r -t 2 line <&3 || true
  printf 'QUIT\r\n' >&3 2>/dev/null || true
  exec 3<&- 3>&-
  [[ "$line" == 220* ]]
}

# True if pid $1 is alive (and not a zombie).
pid_alive() {
  local state
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
  state="$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null || true)"
  [ "$state" != "Z" ]
}

# Prints the pid from pid file $1 if that process is alive and its command name is $2 (default
# "dovecot", the dovecot master).
live_master_pid() {
  local pid comm
  [ -f "$1" ] || return 1
  pid="$(head -n 1 "$1" | tr -dc '0-9')"
  pid_alive "$pid" || return 1
  comm="$(cat "/proc/$pid/comm" 2>/dev/null || true)"
  [ "$comm" = "${2:-dovecot}" ] || return 1
  echo "$pid"
}

log_tail() {
  local log="$1"
  echo "---- last lines of $log ----" >&2
  if [ -f "$log" ]; then tail -n 40 "$log" >&2; else echo "(no log file)" >&2; fi
  echo "----" >&2
}

# --- shared by the SMTP peers (postfix, exim, opensmtpd) --------------------------------------

prefix="${PEERS_PREFIX:-/opt/refsmtp-peers}" # where scripts/deps unpacked Exim and OpenSMTPD

# PEERS_SINK=HOST:PORT, parsed into sink_host and sink_port (both empty when it is unset). Only
# an IPv4 loopback address is accepted: nothing may leave the machine, and a name would need a
# lookup.
sink_host=""
sink_port=""
parse_sink() {
  local v="${PEERS_SINK:-}" o
  [ -n "$v" ] || return 0
  if [[ "$v" =~ ^(127)\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3}):([0-9]{1,5})$ ]]; then
    for o in "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}" "${BASH_REMATCH[4]}"; do
      [ $((10#$o)) -le 255 ] || die_usage "PEERS_SINK='$v': bad IPv4 address"
    done
    sink_host="127.$((10#${BASH_REMATCH[2]})).$((10#${BASH_REMATCH[3]})).$((10#${BASH_REMATCH[4]}))"
    sink_port=$((10#${BASH_REMATCH[5]}))
    if [ "$sink_port" -lt 1 ] || [ "$sink_port" -gt 65535 ]; then
      die_usage "PEERS_SINK='$v': bad port"
    fi
  else
    die_usage "PEERS_SINK='$v' must be HOST:PORT with HOST an IPv4 loopback address (127.x.y.z)"
  fi
}

# The peers' configs take their paths unquoted or in lists: refuse separators they would split.
check_dir_chars() { # DIR PEER CHARS...
  local dir="$1" peer="$2" c
  shift 2
  for c in "$@"; do
    [[ "$dir" != *"$c"* ]] || die_usage "DIR '$dir' must not contain '$c' for the $peer peer"
  done
}

# Resolves the mail user (PEERS_MAIL_USER, default $1) into mail_user, mail_uid, mail_gid.
mail_user=""
mail_uid=""
mail_gid=""
resolve_mail_user() {
  mail_user="${PEERS_MAIL_USER:-$1}"
  id "$mail_user" >/dev/null 2>&1 || fail "mail user '$mail_user' does not exist"
  mail_uid="$(id -u "$mail_user")"
  mail_gid="$(id -g "$mail_user")"
  [ "$mail_uid" -ne 0 ] || fail "refusing to deliver mail as root (PEERS_MAIL_USER=$mail_user)"
}

# Creates the mail root $1 owned (with what an earlier run left in it) by uid $2, gid $3 and
# checks that this user can write it (e.g. a 0700 TMPDIR above it would block deliveries).
prepare_mail_root() {
  local mail="$1" uid="$2" gid="$3"
  mkdir -p "$mail"
  chmod 0755 "$mail"
  chown -R "$uid:$gid" "$mail"
  if command -v setpriv >/dev/null 2>&1 \
    && ! setpriv --reuid="$uid" --regid="$gid" --clear-groups test -w "$mail" 2>/dev/null; then
    fail "$mail is not writable by uid $uid (check permissions of its parents)"
  fi
}

# Makes a throwaway self-signed certificate for peers.test in $1 (cert.pem, key.pem), or keeps
# the one there while it is valid for another day. The key is readable by root and user $2.
make_cert() {
  local tls="$1" owner="$2"
  command -v openssl >/dev/null 2>&1 || {
    echo "$prog: missing Debian package: openssl" >&2
    exit 2
  }
  mkdir -p "$tls"
  if ! [ -s "$tls/key.pem" ] || ! openssl x509 -checkend 86400 -noout -in "$tls/cert.pem" \
    >/dev/null 2>&1; then
    openssl req -x509 -newkey rsa:2048 -nodes -subj "/CN=peers.test" \
      -addext "subjectAltName=DNS:peers.test" -days 30 \
      -keyout "$tls/key.pem" -out "$tls/cert.pem" >/dev/null 2>&1 \
      || fail "openssl could not make a certificate in $tls"
  fi
  chown root:root "$tls" "$tls/cert.pem"
  chown "$owner:root" "$tls/key.pem"
  chmod 0755 "$tls"
  chmod 0644 "$tls/cert.pem"
  chmod 0600 "$tls/key.pem"
}

# Prints the pids of all processes with the exact command-line argument $1 (no forks per process:
# /proc/*/cmdline read with builtins).
pids_with_arg() {
  local d arg args
  for d in /proc/[0-9]*; do
    [ "${d#/proc/}" != "$$" ] || continue
    args=()
    mapfile -d '' -t args 2>/dev/null <"$d/cmdline" || continue
    for arg in "${args[@]}"; do
      if [ "$arg" = "$1" ]; then
        echo "${d#/proc/}"
        break
      fi
    done
  done
  return 0
}

# Prints the pids of all processes in the mount namespace $1 (as readlink shows it: mnt:[N]).
pids_in_mntns() {
  local pattern="${1//[/\\[}"
  pattern="${pattern//]/\\]}"
  # Processes come and go while find runs: its complaints about vanished ones do not matter.
  { find /proc/[0-9]*/ns -maxdepth 1 -name mnt -lname "$pattern" 2>/dev/null || true; } \
    | cut -d/ -f3
}

# Stops a daemon that leads its own process group (its children stay in it): SIGTERM to the
# leader, up to $stop_timeout seconds for it to go, then SIGKILL to the whole group; then up to 5
# seconds for the children to finish, and SIGKILL to any that are left. $2 names it.
stop_group() {
  local pid="$1" what="$2" deadline
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + stop_timeout))
  while pid_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  if pid_alive "$pid"; then
    echo "$prog: $what (pid $pid) ignored SIGTERM for ${stop_timeout}s; killing it" >&2
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 5))
    while pid_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    pid_alive "$pid" && fail "$what (pid $pid) is still running"
  fi
  deadline=$((SECONDS + 5))
  while pgrep -g "$pid" >/dev/null 2>&1 && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  if pgrep -g "$pid" >/dev/null 2>&1; then
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  return 0
}

# Sends SIGTERM to the pids the command "$@" prints, waits up to $stop_timeout seconds for all of
# them (asking again: new ones may appear) to be gone, then SIGKILLs what is left. $1 names them.
terminate_all() {
  local what="$1" pids deadline
  shift
  pids="$("$@")"
  [ -n "$pids" ] || return 0
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null || true
  deadline=$((SECONDS + stop_timeout))
  while pids="$("$@")" && [ -n "$pids" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  [ -n "$pids" ] || return 0
  echo "$prog: $what: processes ${pids//$'\n'/ } ignored SIGTERM for ${stop_timeout}s; killing them" >&2
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
  deadline=$((SECONDS + 5))
  while pids="$("$@")" && [ -n "$pids" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  [ -z "$pids" ] || fail "$what: processes ${pids//$'\n'/ } are still running"
}

# Waits until the peer $1 greets with 220 on port $2 while the pid its function $3 prints (asked
# until it prints one) stays alive. On failure prints the tail of log $4, runs "$5 DIR quiet" for
# DIR $6 and exits 1. Sets started_pid.
started_pid=""
wait_started() {
  local name="$1" port="$2" pidfn="$3" log="$4" stopfn="$5" dir="$6"
  local pid="" deadline=$((SECONDS + start_timeout))
  while :; do
    if [ -z "$pid" ]; then pid="$("$pidfn" "$dir" || true)"; fi
    if [ -n "$pid" ] && lmtp_greets "$port"; then break; fi
    if [ -n "$pid" ] && ! pid_alive "$pid"; then
      echo "$prog: $name (pid $pid) exited during startup" >&2
      log_tail "$log"
      "$stopfn" "$dir" quiet || true
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$prog: $name did not greet on 127.0.0.1:$port within ${start_timeout}s" >&2
      log_tail "$log"
      "$stopfn" "$dir" quiet || true
      exit 1
    fi
    sleep 0.1
  done
  started_pid="$pid"
}

# --- dovecot-lmtp -----------------------------------------------------------------------------

# render TEMPLATE OUT: writes scripts/peers.d/templates/TEMPLATE.in to OUT with every @name@
# replaced by the value of the shell variable `name` (the caller's locals included); a
# placeholder without a variable is an error, so a template never goes out half filled in.
render() {
  local src="$peers_dir/templates/$1.in" out="$2" text name
  text="$(<"$src")" || fail "cannot read template $src"
  while [[ $text =~ @([A-Za-z_][A-Za-z0-9_]*)@ ]]; do
    name="${BASH_REMATCH[1]}"
    [ -n "${!name+x}" ] || fail "template $src: no value for @$name@"
    text="${text//"@$name@"/"${!name}"}"
  done
  printf '%s\n' "$text" >"$out"
}
