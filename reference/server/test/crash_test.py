#!/usr/bin/env python3
"""Crash test: several clients send to refsmtpd while it is killed with SIGKILL at a random
moment; after a restart on the same spool, every message that got a 250 is delivered exactly
once, and no message is ever delivered twice. Rounds, clients and waits are all bounded."""
import os
import random
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time

from harness import queued_ids, wait_until

REFSMTPD = sys.argv[1]
ROUNDS = 3
CLIENTS = 4


def start(spool, mail):
    p = subprocess.Popen([REFSMTPD, "--listen", "mx=127.0.0.1:0", "--hostname", "mx.test", "--spool", spool,
                          "--mail-root", mail, "--domain", "example.test"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    if "port=" not in line:
        p.kill()
        raise SystemExit("refsmtpd did not start")
    return p, int(line.strip().split("port=")[1])


def tokens_in(mail):
    seen = {}
    for root, _, files in os.walk(mail):
        if os.path.basename(root) != "new":
            continue
        for f in files:
            data = open(os.path.join(root, f), "rb").read()
            for t in re.findall(rb"Subject: (tok-\d+-\d+-\d+)\n", data):
                seen[t.decode()] = seen.get(t.decode(), 0) + 1
    return seen


def main():
    work = tempfile.mkdtemp(prefix="refsmtpd-crash-")
    spool, mail = os.path.join(work, "spool"), os.path.join(work, "mail")
    acked, lock = set(), threading.Lock()
    failures = []
    try:
        for rnd in range(ROUNDS):
            proc, port = start(spool, mail)
            stop = threading.Event()

            def client(n):
                i = 0
                while not stop.is_set() and i < 500:
                    try:
                        with smtplib.SMTP("127.0.0.1", port, timeout=5, local_hostname="client.test") as s:
                            for _ in range(2):
                                token = "tok-%d-%d-%d" % (rnd, n, i)
                                i += 1
                                s.sendmail("a@client.test", ["u%d@example.test" % (i % 3)],
                                           ("Subject: %s\r\n\r\nbody %s\r\n" % (token, token)).encode())
                                with lock:
                                    acked.add(token)
                    except (OSError, smtplib.SMTPException):
                        if stop.is_set():
                            return
                        time.sleep(0.01)

            threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
            for t in threads:
                t.start()
            time.sleep(random.uniform(0.3, 1.5))
            proc.send_signal(signal.SIGKILL)  # no chance to clean up
            proc.wait()
            stop.set()
            for t in threads:
                t.join(timeout=30)

        # Restart once more and let the queue drain.
        proc, _ = start(spool, mail)
        wait_until(lambda: not queued_ids(spool), 30)
        queued = queued_ids(spool)
        proc.terminate()
        proc.wait(timeout=10)
        if queued:
            failures.append("queue did not drain: %d messages left" % len(queued))
        seen = tokens_in(mail)
        lost = sorted(t for t in acked if seen.get(t, 0) == 0)
        twice = sorted(t for t, n in seen.items() if n > 1)
        quarantined = os.listdir(os.path.join(spool, "quarantine"))
        print("acknowledged %d, delivered %d distinct, lost %d, duplicated %d, quarantined files %d"
              % (len(acked), len(seen), len(lost), len(twice), len(quarantined)))
        if len(acked) < 20:
            failures.append("too few messages acknowledged (%d) for the test to mean anything" % len(acked))
        if lost:
            failures.append("acknowledged but never delivered: %s" % lost[:10])
        if twice:
            failures.append("delivered more than once: %s" % twice[:10])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for f in failures:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
