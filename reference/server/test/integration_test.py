#!/usr/bin/env python3
"""refsmtpd on loopback, driven by Python's smtplib (a real, independent SMTP client):
plain and STARTTLS delivery into Maildir compared byte for byte, relay denial, unknown users,
pipelined transactions, test mode. Every wait is bounded; the daemon is always stopped."""
import mailbox
import os
import re
import shutil
import smtplib
import ssl
import subprocess
import sys
import tempfile

from harness import check, failures, finish, queued_ids, wait_for_files, wait_until

REFSMTPD = sys.argv[1]



class Daemon:
    def __init__(self, *args):
        self.proc = subprocess.Popen([REFSMTPD, "--listen", "mx=127.0.0.1:0", "--hostname", "mx.test", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # "listening role=mx address=127.0.0.1 port=N"
        if "port=" not in line:
            err = self.proc.stderr.read()
            raise SystemExit("refsmtpd did not start: %r %s" % (line, err))
        self.port = int(line.strip().split("port=")[1])

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()



def main():
    work = tempfile.mkdtemp(prefix="refsmtpd-it-")
    try:
        spool, mail, capture = (os.path.join(work, d) for d in ("spool", "mail", "capture"))
        os.makedirs(capture)
        cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=mx.test",
                        "-days", "2", "-keyout", key, "-out", cert], check=True, capture_output=True)
        d = Daemon("--spool", spool, "--mail-root", mail, "--domain", "example.test", "--tls-cert", cert, "--tls-key", key)
        try:
            body = ("Subject: integration\r\nFrom: a@client.test\r\n\r\nline one\r\n.leading dot\r\n"
                    "..two dots\r\n" + "x" * 998 + "\r\nend\r\n")
            with smtplib.SMTP("127.0.0.1", d.port, timeout=10, local_hostname="client.test") as s:
                code, ehlo = s.ehlo("client.test")
                check(code == 250 and b"STARTTLS" in ehlo and b"PIPELINING" in ehlo, "EHLO lists STARTTLS and PIPELINING")
                refused = s.sendmail("a@client.test", ["bob@example.test"], body.encode())
                check(refused == {}, "message to bob accepted")
                try:
                    s.sendmail("a@client.test", ["someone@elsewhere.test"], b"Subject: relay\r\n\r\nx\r\n")
                    check(False, "relay to elsewhere.test denied")
                except smtplib.SMTPRecipientsRefused as e:
                    code = e.recipients["someone@elsewhere.test"][0]
                    check(code == 554, "relay to elsewhere.test denied with 554 (got %d)" % code)
            files = wait_for_files(os.path.join(mail, "bob", "Maildir", "new"), 1)
            check(len(files) == 1, "one message in bob's Maildir")
            if files:
                data = open(os.path.join(mail, "bob", "Maildir", "new", files[0]), "rb").read()
                expected_tail = body.replace("\r\n", "\n").encode()
                check(data.startswith(b"Return-Path: <a@client.test>\nReceived: from client.test (127.0.0.1)\n\tby mx.test (refsmtp) with ESMTP id "),
                      "Return-Path and Received headers lead the stored message")
                check(data.endswith(expected_tail), "stored body is byte for byte what was sent (LF line ends)")

            # STARTTLS, then mail to two recipients in one transaction (pipelined by smtplib).
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            with smtplib.SMTP("127.0.0.1", d.port, timeout=10, local_hostname="client.test") as s:
                s.ehlo("client.test")
                code, _ = s.starttls(context=ctx)
                check(code == 220, "STARTTLS answered 220")
                code, ehlo = s.ehlo("client.test")
                check(code == 250 and b"STARTTLS" not in ehlo, "after TLS, EHLO no longer offers STARTTLS")
                refused = s.sendmail("<>", ["carol@example.test", "Dave@Example.Test"], b"Subject: tls\r\n\r\nsecret\r\n")
                check(refused == {}, "null sender to two recipients over TLS accepted")
            for user in ("carol", "dave"):
                files = wait_for_files(os.path.join(mail, user, "Maildir", "new"), 1)
                check(len(files) == 1, "message in %s's Maildir" % user)
                if files:
                    data = open(os.path.join(mail, user, "Maildir", "new", files[0]), "rb").read()
                    check(b"with ESMTPS id" in data and data.endswith(b"\nsecret\n") and data.startswith(b"Return-Path: <>\n"),
                          "TLS message stored for %s with ESMTPS trace" % user)

            # Unknown domain part and bad syntax get the right codes; the queue empties.
            with smtplib.SMTP("127.0.0.1", d.port, timeout=10, local_hostname="client.test") as s:
                s.ehlo("client.test")
                code, _ = s.mail("a@client.test")
                check(code == 250, "MAIL accepted")
                code, _ = s.rcpt("a/b@example.test")  # valid syntax, but never a mailbox path
                check(code == 550, "unsafe local part refused with 550 (got %d)" % code)
                code, _ = s.rcpt("../etc@example.test")
                check(code == 501, "leading-dot local part is a syntax error, 501 (got %d)" % code)
                code, _ = s.docmd("RCPT TO:<broken")
                check(code == 501, "broken address refused with 501 (got %d)" % code)
            check(wait_until(lambda: queued_ids(spool) == set(), 10), "queue is empty once delivered")
        finally:
            d.stop()

        # Submission (STARTTLS, then AUTH before MAIL) and submissions (implicit TLS).
        creds = os.path.join(work, "credentials")
        for user, pw in (("alice", "correct horse"), ("bob", "battery staple")):
            r = subprocess.run([REFSMTPD, "passwd", user, "--credentials", creds, "--iterations", "1000"],
                               input=pw + "\n", capture_output=True, text=True, timeout=30)
            check(r.returncode == 0, "passwd wrote an entry for " + user)
        check("correct horse" not in open(creds).read(), "the credentials file holds no clear-text password")
        mode = os.stat(creds).st_mode & 0o777
        check(mode == 0o600, "the credentials file is readable by its owner only (mode %o)" % mode)
        os.chmod(creds, 0o644)  # an admin's mistake: passwd takes the group's and others' bits away again
        r = subprocess.run([REFSMTPD, "passwd", "alice", "--credentials", creds, "--iterations", "1000"],
                           input="correct horse\n", capture_output=True, text=True, timeout=30)
        mode = os.stat(creds).st_mode & 0o777
        check(r.returncode == 0 and mode == 0o600, "passwd drops the group's and the others' bits (mode %o)" % mode)
        check(os.stat(spool).st_mode & 0o777 == 0o700 and os.stat(mail).st_mode & 0o777 == 0o700,
              "the spool and mail root refsmtpd made are private (modes %o, %o)"
              % (os.stat(spool).st_mode & 0o777, os.stat(mail).st_mode & 0o777))
        # A credentials file its group or others may read is refused at start, like ssh's keys.
        os.chmod(creds, 0o640)
        bad = subprocess.run([REFSMTPD, "--listen", "submission=127.0.0.1:0", "--spool", spool, "--mail-root", mail,
                              "--domain", "example.test", "--tls-cert", cert, "--tls-key", key, "--credentials", creds],
                             capture_output=True, text=True, timeout=10)
        check(bad.returncode == 78 and "is open to other users (mode 0640)" in bad.stderr,
              "a group-readable credentials file is refused at start (rc %d, %r)" % (bad.returncode, bad.stderr))
        os.chmod(creds, 0o600)
        # A path option that cannot be a directory is named in the error.
        afile = os.path.join(work, "afile")
        open(afile, "w").close()
        bad = subprocess.run([REFSMTPD, "--listen", "mx=127.0.0.1:0", "--spool", afile, "--mail-root", mail,
                              "--domain", "example.test"], capture_output=True, text=True, timeout=10)
        check(bad.returncode == 73 and "--spool " + afile + ": cannot create the directory" in bad.stderr,
              "a --spool that is a file is named by its option (rc %d, %r)" % (bad.returncode, bad.stderr))
        sub = subprocess.Popen([REFSMTPD, "--listen", "submission=127.0.0.1:0", "--listen", "submissions=127.0.0.1:0",
                                "--hostname", "mx.test", "--spool", spool, "--mail-root", mail, "--domain", "example.test",
                                "--tls-cert", cert, "--tls-key", key, "--credentials", creds],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            ports = {}
            for _ in range(2):
                line = sub.stdout.readline()
                fields = dict(f.split("=", 1) for f in line.split()[1:])
                ports[fields["role"]] = int(fields["port"])
            with smtplib.SMTP("127.0.0.1", ports["submission"], timeout=10, local_hostname="client.test") as s:
                code, ehlo = s.ehlo("client.test")
                check(b"AUTH" not in ehlo, "no AUTH offered before TLS on submission")
                code, _ = s.docmd("AUTH", "PLAIN AGFsaWNlAGNvcnJlY3QgaG9yc2U=")
                check(code == 504, "AUTH before STARTTLS refused with 504, RFC 4954 §4 (got %d)" % code)
                code, _ = s.mail("alice@example.test")
                check(code == 530, "MAIL before AUTH refused with 530 (got %d)" % code)
                s.starttls(context=ctx)
                code, ehlo = s.ehlo("client.test")
                check(b"AUTH PLAIN LOGIN" in ehlo, "AUTH PLAIN LOGIN offered after STARTTLS")
                try:
                    s.login("alice", "wrong")
                    check(False, "wrong password refused")
                except smtplib.SMTPAuthenticationError as e:
                    check(e.smtp_code == 535, "wrong password refused with 535")
                s.login("alice", "correct horse")
                refused = s.sendmail("alice@example.test", ["erin@example.test"], b"Subject: submitted\r\n\r\nvia 587\r\n")
                check(refused == {}, "authenticated submission accepted")
                try:
                    s.sendmail("alice@example.test", ["x@elsewhere.test"], b"Subject: out\r\n\r\nx\r\n")
                    check(False, "remote recipient on submission refused (no relay yet)")
                except smtplib.SMTPRecipientsRefused as e:
                    check(e.recipients["x@elsewhere.test"][0] == 550, "remote recipient on submission refused with 550")
            with smtplib.SMTP_SSL("127.0.0.1", ports["submissions"], timeout=10, context=ctx, local_hostname="client.test") as s:
                code, ehlo = s.ehlo("client.test")
                check(b"AUTH PLAIN LOGIN" in ehlo and b"STARTTLS" not in ehlo, "submissions: implicit TLS, AUTH offered")
                s.login("bob", "battery staple")
                check(s.sendmail("bob@example.test", ["erin@example.test"], b"Subject: 465\r\n\r\nvia 465\r\n") == {},
                      "submissions delivery accepted")
            files = wait_for_files(os.path.join(mail, "erin", "Maildir", "new"), 2)
            check(len(files) == 2, "both submitted messages delivered to erin")
            data = b"".join(open(os.path.join(mail, "erin", "Maildir", "new", f), "rb").read() for f in files)
            check(b"with ESMTPSA id" in data, "submitted mail is traced as ESMTPSA")
            # Repeated failures close the connection (421) after a growing delay.
            with smtplib.SMTP_SSL("127.0.0.1", ports["submissions"], timeout=20, context=ctx, local_hostname="client.test") as s:
                s.ehlo("client.test")
                codes = []
                for _ in range(3):
                    try:
                        codes.append(s.docmd("AUTH", "PLAIN AGFsaWNlAG5vcGU=")[0])
                    except smtplib.SMTPServerDisconnected:
                        codes.append("closed")
                check(codes == [535, 535, 421], "third failed AUTH gets 421 and a close (got %r)" % codes)
        finally:
            sub.terminate()
            sub.wait(timeout=10)

        # Test mode: messages land as files in the capture directory, which is made if missing.
        capture = os.path.join(work, "not-yet", "captured")
        t = Daemon("--test-mode", "--capture-dir", capture, "--domain", "example.test")
        try:
            with smtplib.SMTP("127.0.0.1", t.port, timeout=10, local_hostname="client.test") as s:
                s.sendmail("a@client.test", ["x@example.test"], b"Subject: captured\r\n\r\nhello\r\n")
            files = wait_for_files(capture, 1)
            check(len(files) == 1 and files[0].endswith(".eml"), "test mode captured one .eml file")
            if files:
                data = open(os.path.join(capture, files[0]), "rb").read()
                check(data == b"X-Refsmtp-Mail-From: <a@client.test>\r\nX-Refsmtp-Rcpt-To: <x@example.test>\r\n\r\n"
                              b"Subject: captured\r\n\r\nhello\r\n", "captured file holds envelope and exact body")
        finally:
            t.stop()

        # Test mode with --capture-mbox: every message appended to one mbox file (RFC 4155, mboxrd),
        # whole before its 250, so it can be read as soon as the client has the reply.
        mbox_path = os.path.join(work, "captured.mbox")
        t = Daemon("--test-mode", "--capture-mbox", mbox_path, "--domain", "example.test")
        try:
            with smtplib.SMTP("127.0.0.1", t.port, timeout=10, local_hostname="client.test") as s:
                s.ehlo()
                replies = []
                for sender, rcpts, body in (("a@client.test", ["x@example.test", "y@example.test"],
                                             b"Subject: one\r\n\r\nFrom here on\r\n>From quoted\r\n"),
                                            ("", ["x@example.test"], b"Subject: two\r\n\r\nbounce\r\n")):
                    s.mail(sender)
                    for r in rcpts:
                        s.rcpt(r)
                    replies.append(s.data(body))
            data = open(mbox_path, "rb").read()
            second = data.find(b"\nFrom MAILER-DAEMON ") + 1
            check([r[0] for r in replies] == [250, 250] and b"offset 0 of " in replies[0][1]
                  and ("offset %d of " % second).encode() in replies[1][1],
                  "mbox capture answers 250 with where the entry starts (got %r)" % replies)
            entries = re.split(rb"^From \S+ [A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \d{4}\n", data,
                               flags=re.M)
            check(entries == [b"",
                              b"X-Refsmtp-Mail-From: <a@client.test>\nX-Refsmtp-Rcpt-To: <x@example.test>\n"
                              b"X-Refsmtp-Rcpt-To: <y@example.test>\nSubject: one\n\n>From here on\n>>From quoted\n\n",
                              b"X-Refsmtp-Mail-From: <>\nX-Refsmtp-Rcpt-To: <x@example.test>\nSubject: two\n\nbounce\n\n"],
                  "mbox capture holds both messages, From_ lines quoted mboxrd-style (got %r)" % data[:400])
            check(data.startswith(b"From a@client.test ") and b"\nFrom MAILER-DAEMON " in data,
                  "each entry's From_ line names its sender")
            box = mailbox.mbox(mbox_path, create=False)
            check([m["Subject"] for m in box] == ["one", "two"], "Python's mailbox module reads the capture")
        finally:
            t.stop()

        # Bad command lines give clear errors and exit codes.
        bad = subprocess.run([REFSMTPD, "--listen", "mx=127.0.0.1:0", "--domain", "x.test", "--test-mode",
                              "--capture-dir", capture, "--capture-mbox", mbox_path], capture_output=True, text=True,
                             timeout=10)
        check(bad.returncode == 78 and "one of --capture-dir" in bad.stderr, "two capture stores are refused clearly")
        bad = subprocess.run([REFSMTPD, "--listen", "mx=127.0.0.1:0", "--domain", "x.test", "--capture-mbox", mbox_path,
                              "--spool", os.path.join(work, "s"), "--mail-root", os.path.join(work, "m")],
                             capture_output=True, text=True, timeout=10)
        check(bad.returncode == 78 and "for --test-mode only" in bad.stderr, "a capture store without --test-mode is refused")
        bad = subprocess.run([REFSMTPD, "--listen", "mx=127.0.0.1:0", "--domain", "x.test", "--test-mode",
                              "--capture-mbox", capture], capture_output=True, text=True, timeout=10)
        check(bad.returncode == 73 and "cannot open --capture-mbox " + capture in bad.stderr,
              "a directory as --capture-mbox is refused, naming it (got %r)" % bad.stderr)
        bad = subprocess.run([REFSMTPD, "--listen", "relay=127.0.0.1:0", "--domain", "x.test", "--test-mode",
                              "--capture-dir", capture], capture_output=True, text=True, timeout=10)
        check(bad.returncode == 64 and "unknown role" in bad.stderr, "unknown role is a usage error (64) named clearly")
        bad = subprocess.run([REFSMTPD, "--listen", "submission=127.0.0.1:0", "--domain", "x.test", "--test-mode",
                              "--capture-dir", capture], capture_output=True, text=True, timeout=10)
        check(bad.returncode == 78 and "need TLS" in bad.stderr, "submission without TLS is refused clearly")
        bad = subprocess.run([REFSMTPD, "--listen", "mx=127.0.0.1:0"], capture_output=True, text=True, timeout=10)
        check(bad.returncode == 78 and "--domain" in bad.stderr, "missing domains are refused clearly")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
    finish()
