#!/usr/bin/env python3
"""Restart time with a queue of deferred mail: smtp-source sends MESSAGES x 1 KiB messages (20
sessions) to a durable refsmtpd that cannot deliver them (routed to a closed port on loopback,
retried in an hour), so they stay queued; refsmtpd is killed with SIGKILL, and the time from
starting it again to its 'listening' line -- recovery of the spool -- is measured. The median of
REPEAT runs.

  scripts/bench restart [MESSAGES]        (called by scripts/bench; MESSAGES default 5000)
"""
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smtp_bench import SBIN, stop_process  # noqa: E402  (shared with the SMTP benchmark)

REFSMTPD = sys.argv[1]
MESSAGES = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
REPEAT = int(os.environ.get("REPEAT", "1"))


def closed_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connections are refused, the mail is deferred
    return port


def run(work):
    d = tempfile.mkdtemp(dir=work)
    with open(os.path.join(d, "recipients"), "w") as f:
        f.write("domains example.test\nconform: conform@down.test\n")
    args = [REFSMTPD, "--listen", "mx=127.0.0.1:0", "--recipients", os.path.join(d, "recipients"),
            "--spool", os.path.join(d, "spool"), "--mail-root", os.path.join(d, "mail"),
            "--route", "down.test=127.0.0.1:%d;tls=none" % closed_port(), "--retry-intervals", "1h",
            "--max-connections", "1000", "--max-connections-per-client", "1000"]
    try:
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        port = int(p.stdout.readline().split("port=")[1])
        subprocess.run([os.path.join(SBIN, "smtp-source"), "-s", "20", "-m", str(MESSAGES), "-l", "1024",
                        "-f", "a@client.test", "-t", "conform@example.test", "127.0.0.1:%d" % port],
                       check=True, capture_output=True, timeout=600)
        p.send_signal(signal.SIGKILL)
        p.wait()
        t0 = time.monotonic()
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = p.stdout.readline()
        elapsed = time.monotonic() - t0
        if "port=" not in line:
            raise RuntimeError("refsmtpd did not start again")
        stop_process(p, 30)
        return elapsed
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    work = tempfile.mkdtemp(prefix="refsmtp-restart-bench-")
    try:
        times = []
        for _ in range(REPEAT):
            times.append(run(work))
            print("restart with %d deferred messages: %.2f s" % (MESSAGES, times[-1]), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\nrefsmtpd restart (spool recovery) with %d deferred 1 KiB messages, median of %d: %.2f s"
          % (MESSAGES, REPEAT, statistics.median(times)))


if __name__ == "__main__":
    main()
