#!/usr/bin/env python3
"""refsmtpd relaying to and from a real Postfix (a private instance started by scripts/peers):
refsmtpd hands mail for example.test to Postfix over opportunistic STARTTLS (a static route),
Postfix delivers it to its Maildir; a recipient Postfix refuses comes back to the sender as a
bounce quoting Postfix's reply; and Postfix relays sink.test mail to refsmtpd as its next hop.
Bounded waits; every process is stopped."""
import os
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import uuid

from harness import check, finish, start_refsmtpd, stop, wait_for_files, wait_until

REFSMTPD = sys.argv[1]
PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts", "peers")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def files_with(directory, token):
    out = []
    for root, _, names in os.walk(directory):
        for n in names:
            data = open(os.path.join(root, n), "rb").read()
            if token.encode() in data:
                out.append(data)
    return out


def main():
    work = tempfile.mkdtemp(prefix="refsmtpd-relay-peers-")
    os.chmod(work, 0o755)
    peer_dir = os.path.join(work, "postfix")
    r = None
    try:
        r_port = free_port()
        env = dict(os.environ, PEERS_SINK="127.0.0.1:%d" % r_port)
        res = subprocess.run([PEERS, "start", "postfix", peer_dir], capture_output=True, text=True, timeout=90, env=env)
        check(res.returncode == 0, "Postfix peer started")
        if res.returncode != 0:
            print(res.stdout, res.stderr)
            return
        fields = dict(l.split("=", 1) for l in res.stdout.split() if "=" in l)
        with open(os.path.join(work, "recipients"), "w") as f:
            f.write("domains r.test sink.test\nalice\nsinkbox\nfwd: conform@example.test\ngone: nobody@example.test\n")
        mail = os.path.join(work, "mail")
        r, _ = start_refsmtpd(REFSMTPD, "--listen", "mx=127.0.0.1:%d" % r_port, "--hostname", "mx.r.test",
                              "--recipients", os.path.join(work, "recipients"), "--spool", os.path.join(work, "spool"),
                              "--mail-root", mail, "--route", "example.test=127.0.0.1:%s;tls=opportunistic" % fields["port"],
                              "--relay-timeout", "10s")

        # refsmtpd -> Postfix
        token = uuid.uuid4().hex
        with smtplib.SMTP("127.0.0.1", r_port, timeout=10, local_hostname="client.test") as s:
            s.sendmail("alice@r.test", ["fwd@r.test"], ("Subject: to postfix %s\r\n\r\nrelayed by refsmtpd\r\n" % token).encode())
            s.sendmail("alice@r.test", ["gone@r.test"], b"Subject: to a user postfix lacks\r\n\r\nx\r\n")
        ok = wait_until(lambda: len(files_with(fields["maildir"], token)) == 1, 20)
        check(ok, "Postfix stored the message refsmtpd relayed to it")
        if ok:
            data = files_with(fields["maildir"], token)[0]
            check(b"by mx.r.test (refsmtp) with ESMTP" in data and b"with ESMTPS" in data,
                  "it carries refsmtpd's Received: header and Postfix's, which says TLS was used")
        bounces = wait_for_files(os.path.join(mail, "alice", "Maildir", "new"), 1, 20)
        check(len(bounces) == 1, "the recipient Postfix refused bounced to the sender")
        if bounces:
            dsn = open(os.path.join(mail, "alice", "Maildir", "new", bounces[0]), "rb").read().decode("utf-8", "replace")
            check("Diagnostic-Code: smtp; 550 5.1.1" in dsn and "nobody@example.test" in dsn,
                  "the bounce quotes Postfix's 550 5.1.1 reply")
            check("Remote-MTA: dns; 127.0.0.1\n" in dsn, "and names Postfix's host as the Remote-MTA (RFC 3464)")

        # Postfix -> refsmtpd (refsmtpd is Postfix's next hop for sink.test)
        token2 = uuid.uuid4().hex
        with smtplib.SMTP("127.0.0.1", int(fields["port"]), timeout=10, local_hostname="client.test") as s:
            s.sendmail("someone@client.test", ["sinkbox@sink.test"], ("Subject: from postfix %s\r\n\r\nhello\r\n" % token2).encode())
        got = wait_for_files(os.path.join(mail, "sinkbox", "Maildir", "new"), 1, 20)
        check(len(got) == 1, "refsmtpd received the message Postfix relayed")
        if got:
            data = open(os.path.join(mail, "sinkbox", "Maildir", "new", got[0]), "rb").read()
            check(token2.encode() in data and b"(Postfix)" in data and data.startswith(b"Return-Path: <someone@client.test>\n"),
                  "with Postfix's Received: header and the original sender")
    finally:
        if r is not None:
            stop(r)
        subprocess.run([PEERS, "stop", "postfix", peer_dir], capture_output=True, timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    finish()


if __name__ == "__main__":
    main()
