# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154  # locals are read by render (the templates); globals come from scripts/peers
# scripts/peers: the opensmtpd peer (sourced by scripts/peers; its contract is in that file's header).

smtpd_root() { echo "$prefix/opensmtpd"; }

opensmtpd_check_installed() {
  local root u
  root="$(smtpd_root)"
  if [ ! -x "$root/usr/sbin/smtpd" ] || [ ! -x "$root/usr/libexec/opensmtpd/mail.maildir" ] \
    || [ ! -d "$root/var/lib/opensmtpd/empty" ]; then
    echo "$prog: OpenSMTPD is not unpacked in $root (run scripts/deps)" >&2
    exit 2
  fi
  for u in opensmtpd opensmtpq; do
    if ! id "$u" >/dev/null 2>&1; then
      echo "$prog: user '$u' missing (run scripts/deps)" >&2
      exit 2
    fi
  done
  if ! command -v unshare >/dev/null 2>&1; then
    echo "$prog: missing Debian package: util-linux (unshare)" >&2
    exit 2
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "$prog: the opensmtpd peer needs root (mount namespace, privilege separation)" >&2
    exit 2
  fi
}

# Prints the pid of the smtpd parent of DIR $1 if it runs in the mount namespace recorded at its
# start.
opensmtpd_pid() {
  local pid ns
  pid="$(live_master_pid "$1/smtpd.pid" smtpd)" || return 1
  ns="$(cat "$1/smtpd.mntns" 2>/dev/null)" || return 1
  [ "$(readlink "/proc/$pid/ns/mnt" 2>/dev/null)" = "$ns" ] || return 1
  echo "$pid"
}

opensmtpd_start() {
  local dir="$1"
  opensmtpd_check_installed
  opensmtpd_stop "$dir" quiet

  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd -P)" # absolute, symlink-free
  check_dir_chars "$dir" opensmtpd '"'
  local root conf_dir="$dir/conf" conf="$dir/conf/smtpd.conf" ns="$dir/ns" run="$dir/run"
  local varspool="$dir/varspool" mail="$dir/mail" log="$dir/smtpd.log"
  root="$(smtpd_root)"
  parse_sink
  resolve_mail_user nobody

  # DIR/varspool becomes /var/spool (smtpd makes and checks its queue, smtpd/, itself) and
  # DIR/run becomes /run (the control socket) inside the namespace.
  mkdir -p "$conf_dir" "$ns" "$run" "$varspool"
  chmod 0755 "$dir" "$conf_dir" "$ns" "$run" "$varspool"
  chown root:root "$dir" "$conf_dir" "$ns" "$run" "$varspool"
  prepare_mail_root "$mail" "$mail_uid" "$mail_gid"
  rm -f "$dir/smtpd.pid" "$dir/smtpd.mntns"
  find "$run" -mindepth 1 -type s -delete 2>/dev/null || true
  : >"$log"
  chmod 0644 "$log"

  # What the namespace sees instead of the machine's name service: names only from its hosts
  # file, for glibc (nsswitch) and for smtpd's own resolver (asr reads "lookup file").
  render opensmtpd-hosts "$ns/hosts"
  render opensmtpd-resolv.conf "$ns/resolv.conf"
  sed -e 's/^hosts:.*/hosts: files/' /etc/nsswitch.conf >"$ns/nsswitch.conf"
  grep -q '^hosts:' "$ns/nsswitch.conf" || echo "hosts: files" >>"$ns/nsswitch.conf"
  chmod 0644 "$ns/hosts" "$ns/resolv.conf" "$ns/nsswitch.conf"

  local port
  port="$(free_port)"

  local sink_rules=""
  if [ -n "$sink_host" ]; then
    # smtp+notls: plain SMTP, no STARTTLS attempt; an address, so no MX or DNS lookup.
    sink_rules="action \"sink\" relay host \"smtp+notls://$sink_host:$sink_port\" helo peers.test
match from local for domain \"sink.test\" action \"sink\""
  fi

  render smtpd.conf "$conf"
  chmod 0644 "$conf"

  # The namespace: a private mount table (bind mounts over the compiled-in paths) and host name.
  # setsid: smtpd leads its own session and process group. $0.. are the script's arguments.
  # shellcheck disable=SC2016
  local inner='set -e
dir=$1 root=$2
mount --bind "$dir/run" /run
mount --bind "$dir/varspool" /var/spool
mount --bind "$root/var/lib" /var/lib
mount --bind "$root/usr/libexec" /usr/libexec
mount --bind "$dir/ns/hosts" /etc/hosts
mount --bind "$dir/ns/nsswitch.conf" /etc/nsswitch.conf
if [ -e /etc/resolv.conf ]; then mount --bind "$dir/ns/resolv.conf" /etc/resolv.conf; fi
echo peers.test >/proc/sys/kernel/hostname
echo $$ >"$dir/smtpd.pid"
exec "$root/usr/sbin/smtpd" -d -f "$dir/conf/smtpd.conf"'
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C TZ=UTC \
    setsid unshare --mount --uts --propagation private -- /bin/sh -c "$inner" refsmtp-peer-opensmtpd \
    "$dir" "$root" </dev/null >>"$log" 2>&1 &
  local launched=$!

  # The pid file is written inside the namespace just before smtpd takes over the process.
  local deadline=$((SECONDS + start_timeout))
  while ! live_master_pid "$dir/smtpd.pid" smtpd >/dev/null; do
    if ! pid_alive "$launched" || [ "$SECONDS" -ge "$deadline" ]; then
      echo "$prog: opensmtpd failed to start" >&2
      log_tail "$log"
      kill -TERM "$launched" 2>/dev/null || true
      exit 1
    fi
    sleep 0.05
  done
  readlink "/proc/$(head -n 1 "$dir/smtpd.pid")/ns/mnt" >"$dir/smtpd.mntns"

  wait_started "opensmtpd" "$port" opensmtpd_pid "$log" opensmtpd_stop "$dir"

  echo "port=$port"
  echo "maildir_root=$mail"
  echo "maildir=$mail/example.test"
  echo "log=$log"
  echo "config=$conf"
  echo "pid=$started_pid"
}

# Stops the instance in DIR ($1), if any: smtpd and every process in its mount namespace (its
# privilege-separated children, deliveries). Config, queue, log and mail stay.
opensmtpd_stop() {
  local dir="$1" pid ns
  [ -d "$dir" ] || return 0
  dir="$(cd "$dir" && pwd -P)"
  ns="$(cat "$dir/smtpd.mntns" 2>/dev/null || true)"
  if pid="$(opensmtpd_pid "$dir")"; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + stop_timeout))
    while pid_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  fi
  if [ -n "$ns" ] && [ "$ns" != "$(readlink /proc/self/ns/mnt)" ]; then
    terminate_all "opensmtpd in $dir" pids_in_mntns "$ns"
  fi
  rm -f "$dir/smtpd.pid" "$dir/smtpd.mntns"
  find "$dir/run" -mindepth 1 -type s -delete 2>/dev/null || true
  return 0
}
