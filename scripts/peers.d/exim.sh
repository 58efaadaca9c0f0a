# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154  # locals are read by render (the templates); globals come from scripts/peers
# scripts/peers: the exim peer (sourced by scripts/peers; its contract is in that file's header).

exim_bin() { echo "$prefix/exim/usr/sbin/exim4"; }

exim_check_installed() {
  if [ ! -x "$(exim_bin)" ]; then
    echo "$prog: Exim is not unpacked in $prefix/exim (run scripts/deps)" >&2
    exit 2
  fi
  if ! id Debian-exim >/dev/null 2>&1; then
    echo "$prog: user 'Debian-exim' missing (run scripts/deps)" >&2
    exit 2
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "$prog: the exim peer needs root (it switches to the user Debian-exim)" >&2
    exit 2
  fi
}

# Prints the pid of the Exim daemon of DIR $1, if it runs.
exim_daemon_pid() {
  live_master_pid "$1/run/exim.pid" exim4
}

exim_start() {
  local dir="$1"
  exim_check_installed
  exim_stop "$dir" quiet

  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd -P)" # absolute, symlink-free
  # Exim lists are colon-separated.
  check_dir_chars "$dir" exim :
  local conf_dir="$dir/conf" spool="$dir/spool" logdir="$dir/log" run="$dir/run"
  local mail="$dir/mail" tls="$dir/tls" conf="$dir/conf/exim.conf"
  local log="$logdir/mainlog" startlog="$logdir/start.log"
  parse_sink

  # Given -C, Exim gives up root and runs as its compiled-in user Debian-exim: that user owns the
  # spool, logs, pid file and the delivered mail.
  local user=Debian-exim uid gid
  uid="$(id -u "$user")"
  gid="$(id -g "$user")"
  mkdir -p "$conf_dir" "$spool" "$logdir" "$run"
  chmod 0755 "$dir" "$conf_dir" "$logdir" "$run"
  chown root:root "$dir" "$conf_dir"
  chown -R "$uid:$gid" "$spool" "$logdir" "$run"
  chmod 0750 "$spool"
  rm -f "$run/exim.pid" "$logdir/mainlog" "$logdir/rejectlog" "$logdir/paniclog" "$startlog"
  prepare_mail_root "$mail" "$uid" "$gid"
  make_cert "$tls" "$user"

  local port
  port="$(free_port)"

  local relay_domains="" sink_router="" sink_transport=""
  if [ -n "$sink_host" ]; then
    relay_domains="sink.test"
    sink_router="# PEERS_SINK: sink.test goes to exactly $sink_host:$sink_port (an address: no lookup).
sink:
  driver = manualroute
  domains = +relay_to_domains
  route_list = * $sink_host
  self = send
  transport = to_sink
  no_more
"
    sink_transport="to_sink:
  driver = smtp
  port = $sink_port
  allow_localhost
  hosts_avoid_tls = *
  helo_data = peers.test
"
  fi

  local exim_path exim_group
  exim_path="$(exim_bin)"
  exim_group="$(id -gn "$user")"
  render exim.conf "$conf"
  chmod 0644 "$conf"

  # "-bd" forks the daemon and returns; -q15s retries deferred mail (e.g. a sink not yet up).
  # Startup errors go to stderr before the logs are open: keep them in start.log.
  if ! env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C TZ=UTC \
    timeout "$((start_timeout + 5))" "$(exim_bin)" -C "$conf" -bd -q15s \
    </dev/null >>"$startlog" 2>&1; then
    echo "$prog: exim failed to start" >&2
    log_tail "$startlog"
    log_tail "$logdir/paniclog"
    exim_stop "$dir" quiet || true
    exit 1
  fi

  wait_started "exim daemon" "$port" exim_daemon_pid "$log" exim_stop "$dir"

  echo "port=$port"
  echo "maildir_root=$mail"
  echo "maildir=$mail/example.test"
  echo "log=$log"
  echo "config=$conf"
  echo "pid=$started_pid"
}

# Stops the instance in DIR ($1), if any: the daemon and every process still running with its
# config (receivers, deliveries, queue runners). Config, spool, logs and mail stay.
exim_stop() {
  local dir="$1" pid
  [ -d "$dir" ] || return 0
  dir="$(cd "$dir" && pwd -P)"
  if pid="$(exim_daemon_pid "$dir")"; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + stop_timeout))
    while pid_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  fi
  terminate_all "exim in $dir" pids_with_arg "$dir/conf/exim.conf"
  rm -f "$dir/run/exim.pid"
  return 0
}

# --- opensmtpd --------------------------------------------------------------------------------
