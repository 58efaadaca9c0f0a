# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154  # locals are read by render (the templates); globals come from scripts/peers
# scripts/peers: the postfix peer (sourced by scripts/peers; its contract is in that file's header).

postfix_check_installed() {
  if [ ! -x /usr/sbin/postfix ] || [ ! -x /usr/sbin/postconf ] \
    || [ ! -x /usr/lib/postfix/sbin/master ] || [ ! -x /usr/lib/postfix/sbin/virtual ] \
    || [ ! -x /usr/lib/postfix/sbin/postlogd ]; then
    echo "$prog: missing Debian package: postfix" >&2
    echo "  install it without starting the system service, e.g.:" >&2
    echo "    echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections" >&2
    echo "    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postfix" >&2
    echo "  (with an 'exit 101' /usr/sbin/policy-rc.d in place during the install)" >&2
    exit 2
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "$prog: the postfix peer needs root (the Postfix master only runs as root)" >&2
    exit 2
  fi
}

# Runs "postfix -c $1 $2" (at most $stop_timeout or $start_timeout seconds) for the instance
# whose config directory is $1, with a clean environment (MAIL_CONFIG is set by -c; nothing from
# the caller's environment leaks in). Postfix commands report errors on stderr only if it is a
# terminal; otherwise they go to the instance's maillog_file (or syslog before main.cf is read).
postfix_cmd() {
  local secs="$start_timeout"
  [ "$2" != stop ] || secs="$stop_timeout"
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C timeout "$((secs + 5))" \
    /usr/sbin/postfix -c "$1" "$2"
}

postfix_start() {
  local dir="$1"
  postfix_check_installed
  postfix_stop "$dir" quiet

  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd -P)" # absolute, symlink-free: Postfix wants absolute paths
  [[ "$dir" != *,* ]] || die_usage "DIR '$dir' must not contain ',' for the postfix peer"
  local conf="$dir/conf" queue="$dir/queue" data="$dir/data" mail="$dir/mail"
  local log="$dir/postfix.log" tls="$dir/tls"
  parse_sink

  # Mail is stored as "nobody" (never as root or as Postfix's own mail_owner; PEERS_MAIL_USER
  # overrides). Postfix daemons run as the package's "postfix" user.
  local mail_user mail_uid mail_gid
  mail_user="${PEERS_MAIL_USER:-nobody}"
  id postfix >/dev/null 2>&1 || fail "user 'postfix' missing (postfix package not set up?)"
  getent group postdrop >/dev/null 2>&1 || fail "group 'postdrop' missing (postfix package not set up?)"
  id "$mail_user" >/dev/null 2>&1 || fail "mail user '$mail_user' does not exist"
  mail_uid="$(id -u "$mail_user")"
  mail_gid="$(id -g "$mail_user")"
  [ "$mail_uid" -ne 0 ] || fail "refusing to deliver mail as root (PEERS_MAIL_USER=$mail_user)"
  [ "$mail_user" != postfix ] || fail "refusing to deliver mail as Postfix's mail_owner 'postfix'"

  mkdir -p "$conf" "$queue" "$data" "$mail"
  chmod 0755 "$dir" "$conf" "$queue" "$mail"
  chown root:root "$dir" "$conf" "$queue"
  chown postfix: "$data"
  chmod 0700 "$data"
  chown "$mail_uid:$mail_gid" "$mail"
  # The mail user must be able to reach DIR/mail (e.g. a 0700 TMPDIR would block it).
  if command -v setpriv >/dev/null 2>&1 \
    && ! setpriv --reuid="$mail_uid" --regid="$mail_gid" --clear-groups test -w "$mail" \
      2>/dev/null; then
    fail "$mail is not writable by mail user '$mail_user' (check permissions of its parents)"
  fi
  : >"$log"
  chmod 0644 "$log"
  make_cert "$tls" root

  local port
  port="$(free_port)"

  # PEERS_SINK: sink.test is a relay domain whose mail goes to exactly that host and port.
  local relay_domains="" transport_maps=""
  if [ -n "$sink_host" ]; then
    relay_domains="sink.test"
    transport_maps="inline:{ sink.test=smtp:[$sink_host]:$sink_port }"
  fi

  render postfix-main.cf "$conf/main.cf"

  # No chroot anywhere; only the services this instance needs.
  render postfix-master.cf "$conf/master.cf"
  chmod 0644 "$conf/main.cf" "$conf/master.cf"

  # "postfix start" creates the queue directories, checks them and starts the master, which
  # daemonizes; its stdio go to the log so a caller capturing our stdout is never kept waiting.
  # As root, -c needs no alternate_config_directories entry in /etc/postfix/main.cf.
  rm -f "$queue/pid/master.pid"
  if ! postfix_cmd "$conf" start </dev/null >>"$log" 2>&1; then
    echo "$prog: postfix failed to start" >&2
    log_tail "$log"
    postfix_stop "$dir" quiet || true
    exit 1
  fi

  local pid="" deadline=$((SECONDS + start_timeout))
  while :; do
    if [ -z "$pid" ]; then pid="$(live_master_pid "$queue/pid/master.pid" master || true)"; fi
    if [ -n "$pid" ] && lmtp_greets "$port"; then break; fi
    if [ -n "$pid" ] && ! pid_alive "$pid"; then
      echo "$prog: postfix master (pid $pid) exited during startup" >&2
      log_tail "$log"
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$prog: postfix SMTP did not answer on 127.0.0.1:$port within ${start_timeout}s" >&2
      log_tail "$log"
      postfix_stop "$dir" quiet || true
      exit 1
    fi
    sleep 0.1
  done

  echo "port=$port"
  echo "maildir_root=$mail"
  echo "maildir=$mail/example.test"
  echo "log=$log"
  echo "config=$conf"
  echo "pid=$pid"
}

# Stops the instance in DIR ($1), if any. Config, queue, log and mail stay.
postfix_stop() {
  local dir="$1" conf pid
  [ -d "$dir" ] || return 0
  conf="$dir/conf"
  pid="$(live_master_pid "$dir/queue/pid/master.pid" master)" || return 0
  # "postfix stop" signals the master (its own process group) and waits up to 5 s itself.
  if [ -x /usr/sbin/postfix ] && [ -f "$conf/main.cf" ]; then
    postfix_cmd "$conf" stop </dev/null >>"$dir/postfix.log" 2>&1 || true
  fi
  stop_group "$pid" "postfix master"
  return 0
}

# --- exim -------------------------------------------------------------------------------------
