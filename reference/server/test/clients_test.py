#!/usr/bin/env python3
"""refsmtpd against real clients from Debian: swaks (plain, STARTTLS, AUTH, pipelining), curl
(smtp:// and smtps:// uploads), openssl s_client -starttls smtp, and raw sockets for what those
tools do not do (BDAT, SMTPUTF8). Delivered Maildir files are compared byte for byte."""
import os
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile

from harness import check, failures, finish, reply, wait_for_files, wait_until
import time

REFSMTPD = sys.argv[1]




def stored(mail, user):
    d = os.path.join(mail, user, "Maildir", "new")
    return [open(os.path.join(d, f), "rb").read() for f in wait_for_files(d, 1)]


def run(cmd, stdin=None):
    return subprocess.run(cmd, input=stdin, capture_output=True, timeout=60)


def main():
    work = tempfile.mkdtemp(prefix="refsmtpd-clients-")
    spool, mail = os.path.join(work, "spool"), os.path.join(work, "mail")
    cert, key, creds = (os.path.join(work, n) for n in ("cert.pem", "key.pem", "credentials"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=mx.test", "-days", "2",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    subprocess.run([REFSMTPD, "passwd", "carol", "--credentials", creds, "--iterations", "1000"], input=b"s3cret\n",
                   check=True, capture_output=True)
    p = subprocess.Popen([REFSMTPD, "--listen", "mx=127.0.0.1:0", "--listen", "submission=127.0.0.1:0",
                          "--listen", "submissions=127.0.0.1:0", "--hostname", "mx.test", "--spool", spool,
                          "--mail-root", mail, "--domain", "example.test", "--tls-cert", cert, "--tls-key", key,
                          "--credentials", creds], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ports = {}
        for _ in range(3):
            fields = dict(f.split("=", 1) for f in p.stdout.readline().split()[1:])
            ports[fields["role"]] = fields["port"]
        mx, sub, subs = ports["mx"], ports["submission"], ports["submissions"]

        # swaks, plain, with pipelining.
        r = run(["swaks", "--server", "127.0.0.1", "--port", mx, "--helo", "swaks.test", "--from", "a@client.test",
                 "--to", "swaks@example.test", "--pipeline", "--header", "Subject: from swaks", "--body", "swaks body"])
        check(r.returncode == 0, "swaks --pipeline delivered (rc %d)" % r.returncode)
        msgs = stored(mail, "swaks")
        check(len(msgs) == 1 and b"Subject: from swaks\n" in msgs[0] and b"\n\nswaks body\n" in msgs[0],
              "swaks message in the Maildir")

        # swaks with STARTTLS and AUTH PLAIN on submission, and AUTH LOGIN.
        for mech, user in (("PLAIN", "tlsplain"), ("LOGIN", "tlslogin")):
            r = run(["swaks", "--server", "127.0.0.1", "--port", sub, "--tls", "--auth", mech, "--auth-user", "carol",
                     "--auth-password", "s3cret", "--from", "carol@example.test", "--to", user + "@example.test",
                     "--body", "over TLS " + mech])
            check(r.returncode == 0, "swaks --tls --auth %s delivered (rc %d)" % (mech, r.returncode))
            msgs = stored(mail, user)
            check(len(msgs) == 1 and b"with ESMTPSA" in msgs[0], "AUTH %s message traced ESMTPSA" % mech)
        r = run(["swaks", "--server", "127.0.0.1", "--port", sub, "--tls", "--auth", "PLAIN", "--auth-user", "carol",
                 "--auth-password", "wrong", "--from", "carol@example.test", "--to", "x@example.test"])
        check(r.returncode != 0 and b"535 5.7.8" in r.stdout, "swaks with a wrong password gets 535 5.7.8")

        # curl: smtp:// upload, and smtps:// with a login.
        mailfile = os.path.join(work, "curl.eml")
        open(mailfile, "wb").write(b"Subject: from curl\r\n\r\n.dot line\r\ncurl body\r\n")
        r = run(["curl", "-sS", "--url", "smtp://127.0.0.1:%s" % mx, "--mail-from", "a@client.test",
                 "--mail-rcpt", "curl@example.test", "--upload-file", mailfile])
        check(r.returncode == 0, "curl smtp:// upload (rc %d %s)" % (r.returncode, r.stderr[-200:]))
        msgs = stored(mail, "curl")
        check(len(msgs) == 1 and msgs[0].endswith(b"\nSubject: from curl\n\n.dot line\ncurl body\n"),
              "curl message stored byte for byte, leading dot intact")
        r = run(["curl", "-sS", "--insecure", "--url", "smtps://127.0.0.1:%s" % subs, "--user", "carol:s3cret",
                 "--mail-from", "carol@example.test", "--mail-rcpt", "curltls@example.test", "--upload-file", mailfile])
        check(r.returncode == 0, "curl smtps:// upload with login (rc %d %s)" % (r.returncode, r.stderr[-200:]))
        check(len(stored(mail, "curltls")) == 1, "curl smtps message stored")

        # openssl s_client -starttls smtp: a full dialog over the upgraded connection.
        dialog = b"EHLO openssl.test\r\nMAIL FROM:<a@client.test>\r\nRCPT TO:<openssl@example.test>\r\nDATA\r\n" \
                 b"Subject: via s_client\r\n\r\nhello\r\n.\r\nQUIT\r\n"
        r = run(["openssl", "s_client", "-quiet", "-starttls", "smtp", "-connect", "127.0.0.1:%s" % mx], stdin=dialog)
        check(b"250 2.0.0 OK queued as" in r.stdout, "openssl s_client -starttls smtp: message queued")
        check(len(stored(mail, "openssl")) == 1, "s_client message stored")

        # BDAT (RFC 3030) and SMTPUTF8 (RFC 6531) over a raw socket.
        s = socket.create_connection(("127.0.0.1", int(mx)), timeout=10)
        f = s.makefile("rb")

        reply(f)
        s.sendall(b"EHLO raw.test\r\n")
        ehlo = reply(f)
        check(b"CHUNKING" in ehlo and b"SMTPUTF8" in ehlo and b"8BITMIME" in ehlo, "EHLO offers CHUNKING, SMTPUTF8, 8BITMIME")
        chunk1, chunk2 = b"Subject: chunks\r\n\r\nline\r\n.\r\n", "caf\u00e9 \u2603\r\n".encode()
        s.sendall(b"MAIL FROM:<j\xc3\xb6rg@client.test> SMTPUTF8 BODY=8BITMIME\r\nRCPT TO:<bdat@example.test>\r\n")
        r1, r2 = reply(f), reply(f)
        s.sendall(b"BDAT %d\r\n" % len(chunk1) + chunk1 + b"BDAT %d LAST\r\n" % len(chunk2) + chunk2)
        r3, r4 = reply(f), reply(f)
        check(r1.startswith(b"250") and r2.startswith(b"250") and r3.startswith(b"250") and r4.startswith(b"250 2.0.0"),
              "SMTPUTF8 sender and two BDAT chunks accepted")
        s.sendall(b"QUIT\r\n")
        reply(f)
        s.close()
        msgs = stored(mail, "bdat")
        check(len(msgs) == 1 and msgs[0].startswith("Return-Path: <j\u00f6rg@client.test>\n".encode())
              and msgs[0].endswith(b"\nSubject: chunks\n\nline\n.\n" + chunk2.replace(b"\r\n", b"\n")),
              "BDAT message stored exactly (no dot processing), UTF-8 sender kept")
    finally:
        p.terminate()
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
    finish()
