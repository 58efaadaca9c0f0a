# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154  # locals are read by render (the templates); globals come from scripts/peers
# scripts/peers: the dovecot peer (sourced by scripts/peers; its contract is in that file's header).

dovecot_check_installed() {
  local missing=()
  if [ ! -x /usr/sbin/dovecot ] || [ ! -x /usr/lib/dovecot/config ] \
    || [ ! -x /usr/lib/dovecot/auth ]; then
    missing+=(dovecot-core)
  fi
  if [ ! -x /usr/lib/dovecot/lmtp ]; then
    missing+=(dovecot-lmtpd)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    echo "$prog: missing Debian package(s): ${missing[*]}" >&2
    echo "  install with: apt-get install -y ${missing[*]}" >&2
    exit 2
  fi
}

dovecot_start() {
  local dir="$1"
  dovecot_check_installed
  dovecot_stop "$dir" quiet

  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd -P)" # absolute, symlink-free: Dovecot wants absolute paths
  local conf="$dir/dovecot.conf" log="$dir/dovecot.log" run="$dir/run" state="$dir/state"
  local mail="$dir/mail"

  # Who runs what. As root: services drop to the package's "dovecot"/"dovenull" users and mail
  # is stored as "dovecot" (never as root; PEERS_MAIL_USER overrides). As a normal user:
  # everything runs as that user, which Dovecot supports when no service changes user/chroot.
  local internal_user login_user mail_user mail_uid mail_gid internal_group
  if [ "$(id -u)" -eq 0 ]; then
    internal_user=dovecot
    login_user=dovenull
    mail_user="${PEERS_MAIL_USER:-dovecot}"
    id "$internal_user" >/dev/null 2>&1 || fail "user '$internal_user' missing (dovecot-core not set up?)"
    id "$login_user" >/dev/null 2>&1 || fail "user '$login_user' missing (dovecot-core not set up?)"
    id "$mail_user" >/dev/null 2>&1 || fail "mail user '$mail_user' does not exist"
    internal_group="$(id -gn "$internal_user")"
  else
    internal_user="$(id -un)"
    login_user="$internal_user"
    mail_user="$internal_user"
    internal_group="$(id -gn)"
  fi
  mail_uid="$(id -u "$mail_user")"
  mail_gid="$(id -g "$mail_user")"
  [ "$mail_uid" -ne 0 ] || fail "refusing to deliver mail as root (PEERS_MAIL_USER=$mail_user)"

  mkdir -p "$run" "$state" "$mail"
  chmod 0755 "$dir" "$run" "$state"
  chmod 0755 "$mail"
  if [ "$(id -u)" -eq 0 ]; then
    chown "$mail_uid:$mail_gid" "$mail"
    # The mail user must be able to reach DIR/mail (e.g. a 0700 TMPDIR would block it).
    if command -v setpriv >/dev/null 2>&1 \
      && ! setpriv --reuid="$mail_uid" --regid="$mail_gid" --clear-groups test -w "$mail" \
        2>/dev/null; then
      fail "$mail is not writable by mail user '$mail_user' (check permissions of its parents)"
    fi
  fi
  rm -f "$run/master.pid"
  : >"$log"
  [ "$(id -u)" -ne 0 ] || chown "$internal_user:$internal_group" "$log"
  chmod 0644 "$log"

  local port
  port="$(free_port)"
  # A password nobody knows: the passdb exists only because Dovecot's auth requires one; there
  # are no login services anyway.
  local secret
  secret="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"

  render dovecot.conf "$conf"

  # DOVECOT_HOSTNAME/DOVECOT_HOSTDOMAIN: the master passes these to its children, so nothing
  # calls gethostbyname() on the machine's name (no DNS). The master daemonizes; its stdio go to
  # the log so a caller capturing our stdout is never kept waiting on a pipe.
  if ! env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DOVECOT_HOSTNAME=peers.test \
    DOVECOT_HOSTDOMAIN=peers.test /usr/sbin/dovecot -c "$conf" </dev/null >>"$log" 2>&1; then
    echo "$prog: dovecot failed to start" >&2
    log_tail "$log"
    exit 1
  fi

  local pid="" deadline=$((SECONDS + start_timeout))
  while :; do
    if [ -z "$pid" ]; then pid="$(live_master_pid "$run/master.pid" || true)"; fi
    if [ -n "$pid" ] && lmtp_greets "$port"; then break; fi
    if [ -n "$pid" ] && ! pid_alive "$pid"; then
      echo "$prog: dovecot master (pid $pid) exited during startup" >&2
      log_tail "$log"
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$prog: dovecot LMTP did not answer on 127.0.0.1:$port within ${start_timeout}s" >&2
      log_tail "$log"
      dovecot_stop "$dir" quiet || true
      exit 1
    fi
    sleep 0.1
  done

  echo "port=$port"
  echo "maildir_root=$mail"
  echo "log=$log"
  echo "pid=$pid"
}

# Stops the instance in DIR ($1), if any. Removes only runtime sockets under DIR/run.
dovecot_stop() {
  local dir="$1" run pid
  [ -d "$dir" ] || return 0
  run="$dir/run"
  if pid="$(live_master_pid "$run/master.pid")"; then
    stop_group "$pid" dovecot  # the daemonized master leads its own process group
  fi
  # Runtime leftovers only: sockets and the pid file. Config, log, state and mail stay.
  if [ -d "$run" ]; then
    find "$run" -mindepth 1 \( -type s -o -type p -o -name master.pid \) -delete 2>/dev/null || true
  fi
  return 0
}

# --- postfix ----------------------------------------------------------------------------------
