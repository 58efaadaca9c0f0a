#!/usr/bin/env python3
"""refsmtpd's local delivery methods end to end: mbox files (RFC 4155, mboxrd), and LMTP into a
real Dovecot started by scripts/peers (RFC 2033), with unknown users refused by Dovecot
bounced back through the queue. Bounded waits; every process is stopped."""
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile

from harness import check, failures, finish, queued_ids, start_refsmtpd, stop, wait_for_files, wait_until
import time

REFSMTPD = sys.argv[1]
PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts", "peers")



def start(*args):
    p, ports = start_refsmtpd(REFSMTPD, "--listen", "mx=127.0.0.1:0", "--hostname", "mx.test", *args)
    return p, ports["mx"]


def main():
    work = tempfile.mkdtemp(prefix="refsmtpd-delivery-")
    os.chmod(work, 0o755)
    try:
        # mbox
        spool, mail = os.path.join(work, "spool"), os.path.join(work, "mail")
        p, port = start("--domain", "example.test", "--spool", spool, "--mail-root", mail, "--delivery", "mbox")
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=10, local_hostname="client.test") as s:
                s.sendmail("a@client.test", ["box@example.test"], b"Subject: one\r\n\r\nFrom here\r\n")
                s.sendmail("<>", ["box@example.test"], b"Subject: two\r\n\r\nsecond\r\n")
            path = os.path.join(mail, "box.mbox")
            ok = wait_until(lambda: os.path.exists(path) and open(path, "rb").read().count(b"\nFrom ") + open(path, "rb").read().startswith(b"From ") >= 2)
            data = open(path, "rb").read() if os.path.exists(path) else b""
            check(ok and data.startswith(b"From a@client.test ") and b"\nFrom MAILER-DAEMON " in data,
                  "two messages in the mbox, each with its From_ line")
            check(b"\n>From here\n" in data, "a body line starting 'From ' is quoted (mboxrd)")
        finally:
            stop(p)

        # LMTP into Dovecot
        peer_dir = os.path.join(work, "dovecot")
        r = subprocess.run([PEERS, "start", "dovecot-lmtp", peer_dir], capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, "dovecot LMTP peer started")
        if r.returncode != 0:
            print(r.stdout, r.stderr)
            return
        fields = dict(l.split("=", 1) for l in r.stdout.split() if "=" in l)
        try:
            spool2 = os.path.join(work, "spool2")
            p, port = start("--domain", "example.test", "--spool", spool2, "--delivery", "lmtp", "--lmtp", "127.0.0.1:" + fields["port"])
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=10, local_hostname="client.test") as s:
                    s.sendmail("a@client.test", ["alice@example.test", "bob@example.test"],
                               b"Subject: via lmtp\r\n\r\nhanded to dovecot\r\n..dot\r\n")
                for user in ("alice", "bob"):
                    d = os.path.join(fields["maildir_root"], user, "Maildir", "new")
                    got = wait_until(lambda: os.path.isdir(d) and len(os.listdir(d)) == 1)
                    check(got, "Dovecot stored the message for " + user)
                    if got:
                        data = open(os.path.join(d, os.listdir(d)[0]), "rb").read()
                        check(b"Subject: via lmtp\n" in data and b"\n\nhanded to dovecot\n..dot\n" in data
                              and b"Received: from client.test (127.0.0.1)" in data and b"by mx.test (refsmtp) with ESMTP id" in data,
                              "%s's copy carries our Received: header and the exact body" % user)
                check(wait_until(lambda: queued_ids(spool2) == set()), "the queue emptied after LMTP delivery")
            finally:
                stop(p)
        finally:
            subprocess.run([PEERS, "stop", "dovecot-lmtp", peer_dir], capture_output=True, timeout=60)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
    finish()
