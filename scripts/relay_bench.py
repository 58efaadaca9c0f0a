#!/usr/bin/env python3
"""Relay throughput on loopback: Postfix's smtp-source sends MESSAGES x 1 KiB messages (20
sessions) to a durable refsmtpd whose recipient table forwards the address to another domain,
routed (--route) to Postfix's smtp-sink. Reported: the accept rate (until smtp-source is done)
and the relay rate (until the queue has logged every message done, i.e. smtp-sink answered 250),
for several --relay-connections, and for a private Postfix relaying the same way (scripts/peers
with PEERS_SINK); smtp-source straight into smtp-sink is printed as the ceiling. The median of
REPEAT runs.

  scripts/bench relay [MESSAGES]          (called by scripts/bench; MESSAGES default 5000)
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smtp_bench import SBIN, LogCount, Sink, stop_process  # noqa: E402  (shared with the SMTP benchmark)

REFSMTPD = sys.argv[1]
MESSAGES = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
REPEAT = int(os.environ.get("REPEAT", "1"))
SESSIONS = 20
CONNECTIONS = (1, 2, 8)
PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers")


def source(port, rcpt="conform@example.test"):
    cmd = [os.path.join(SBIN, "smtp-source"), "-s", str(SESSIONS), "-m", str(MESSAGES), "-l", "1024",
           "-f", "bench@client.test", "-t", rcpt, "127.0.0.1:%d" % port]
    r = subprocess.run(cmd, capture_output=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError("smtp-source failed: %s" % r.stderr.decode()[-300:])


def relay_run(work, sink_port, connections):
    d = tempfile.mkdtemp(dir=work)
    table = os.path.join(d, "recipients")
    with open(table, "w") as f:
        f.write("domains example.test\nconform: conform@sink.test\n")
    log = os.path.join(d, "refsmtpd.log")
    with open(log, "wb") as err:
        proc = subprocess.Popen([REFSMTPD, "--listen", "mx=127.0.0.1:0", "--hostname", "relay.test", "--recipients", table,
                                 "--spool", os.path.join(d, "spool"), "--mail-root", os.path.join(d, "mail"),
                                 "--route", "sink.test=127.0.0.1:%d;tls=none" % sink_port,
                                 "--relay-connections", str(connections),
                                 "--max-connections", "1000", "--max-connections-per-client", "1000"],
                                stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        port = int(proc.stdout.readline().strip().split("port=")[1])
        t0 = time.monotonic()
        source(port)
        accepted = time.monotonic() - t0
        # Every message leaves the queue with "what=done" once smtp-sink has answered 250.
        try:
            relayed = LogCount(log, b"what=done").wait_for(MESSAGES) - t0
        except RuntimeError:
            deferred = LogCount(log, b'what="deferred').update()
            raise RuntimeError("not every message was relayed (%d deferrals logged)" % deferred)
        return MESSAGES / accepted, MESSAGES / relayed
    finally:
        stop_process(proc, 30)
        shutil.rmtree(d, ignore_errors=True)


def postfix_run(work, sink_port):
    """The same through a private Postfix (scripts/peers, PEERS_SINK): sink.test is its relay domain,
    sent to smtp-sink; done when its log shows every message status=sent."""
    d = os.path.join(work, "postfix")
    env = dict(os.environ, PEERS_SINK="127.0.0.1:%d" % sink_port)
    r = subprocess.run([PEERS, "start", "postfix", d], capture_output=True, text=True, timeout=90, env=env)
    if r.returncode != 0:
        raise RuntimeError("postfix peer did not start: " + r.stdout[-300:] + r.stderr[-300:])
    port = int(dict(l.split("=", 1) for l in r.stdout.split() if "=" in l)["port"])
    log = os.path.join(d, "postfix.log")
    try:
        t0 = time.monotonic()
        source(port, "conform@sink.test")
        accepted = time.monotonic() - t0
        done = LogCount(log, b"status=sent").wait_for(MESSAGES)
        return MESSAGES / accepted, MESSAGES / (done - t0)
    finally:
        subprocess.run([PEERS, "stop", "postfix", d], capture_output=True, timeout=60)
        shutil.rmtree(d, ignore_errors=True)


def main():
    if not os.path.exists(os.path.join(SBIN, "smtp-source")):
        raise SystemExit("smtp-source not found: it comes with Debian's postfix package (scripts/deps installs it)")
    work = tempfile.mkdtemp(prefix="refsmtp-relay-bench-")
    os.chmod(work, 0o755)  # the Postfix peer delivers as an unprivileged user, who must reach its directories
    results, ceiling = {}, []
    try:
        for _ in range(REPEAT):
            sink = Sink()
            sink_port = sink.start()
            try:
                t0 = time.monotonic()
                source(sink_port)
                ceiling.append(MESSAGES / (time.monotonic() - t0))
                print("smtp-source -> smtp-sink: %8.0f msgs/s" % ceiling[-1], file=sys.stderr)
                for c in CONNECTIONS:
                    accept, relay = relay_run(work, sink_port, c)
                    results.setdefault(c, []).append((accept, relay))
                    print("refsmtpd relay, --relay-connections %d: accepted %8.0f msgs/s, relayed %8.0f msgs/s"
                          % (c, accept, relay), file=sys.stderr)
                try:
                    accept, relay = postfix_run(work, sink_port)
                    results.setdefault("postfix", []).append((accept, relay))
                    print("Postfix relay: accepted %8.0f msgs/s, relayed %8.0f msgs/s" % (accept, relay),
                          file=sys.stderr)
                except Exception as e:  # a peer that cannot run here is reported, not fatal
                    print("skip Postfix: %s" % e, file=sys.stderr)
            finally:
                sink.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n%d x 1 KiB messages, %d smtp-source sessions, refsmtpd -> smtp-sink, median of %d run(s):\n"
          % (MESSAGES, SESSIONS, REPEAT))
    print("| Relay | accepted | relayed (all done) |")
    print("|---|---|---|")
    for c in (*CONNECTIONS, "postfix"):
        if c not in results:
            continue
        name = "Postfix 3.7 (private instance)" if c == "postfix" else "refsmtpd --relay-connections %d" % c
        print("| %s | %.0f msgs/s | %.0f msgs/s |" % (name, statistics.median(a for a, _ in results[c]),
                                                    statistics.median(r for _, r in results[c])))
    print("\nsmtp-source straight into smtp-sink: %.0f msgs/s" % statistics.median(ceiling))


if __name__ == "__main__":
    main()
