#!/usr/bin/env python3
"""Two refsmtpd instances relaying through real DNS (issue 6): a dnsmasq on loopback serves the
test zones; A (127.0.0.1) takes mail on submission (STARTTLS, then AUTH) and relays by MX lookup
to B (127.0.0.2), whose certificate A verifies (--relay-tls required). Checks: the message lands
in B's Maildir byte for byte with both Received: headers; the first MX (connection refused) is
skipped for the second; a domain without MX records is reached through its A record; a null-MX
domain and a domain that does not exist bounce at once; with an untrusted certificate nothing is
sent and the mail stays queued. Bounded waits; every process is stopped."""
import os
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time

from harness import LogTail, check, finish, queued_ids, start_refsmtpd, stop, wait_for_files, wait_until

REFSMTPD = sys.argv[1]


def free_port(address, kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def make_cert(work, name, hosts):
    cert, key = os.path.join(work, name + "-cert.pem"), os.path.join(work, name + "-key.pem")
    san = ",".join("DNS:" + h for h in hosts)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + hosts[0],
                    "-addext", "subjectAltName=" + san, "-days", "2", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


def start_dnsmasq(records):
    dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    for _ in range(5):
        port = free_port("127.0.0.1", socket.SOCK_DGRAM)
        p = subprocess.Popen([dnsmasq, "--no-daemon", "--port=%d" % port, "--listen-address=127.0.0.1", "--bind-interfaces",
                              "--no-resolv", "--no-hosts", "--local=/test/", "--pid-file=", "--user=root",
                              "--conf-file=/dev/null", *records], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Ready once it answers an A query for mx.b.test (dig from bind9-dnsutils).
        for _ in range(50):
            if p.poll() is not None:
                break
            r = subprocess.run(["dig", "+short", "+time=1", "+tries=1", "-p", str(port), "@127.0.0.1", "mx.b.test", "A"],
                               capture_output=True, text=True)
            if r.stdout.strip() == "127.0.0.2":
                return p, port
            time.sleep(0.1)
        if p.poll() is None:
            p.kill()
            p.wait()
    raise SystemExit("dnsmasq did not start")


def maildir_files(root, box):
    d = os.path.join(root, box, "Maildir", "new")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def main():
    work = tempfile.mkdtemp(prefix="refsmtpd-relay-")
    procs = []
    try:
        dns, dns_port = start_dnsmasq([
            "--mx-host=b.test,dead.b.test,5", "--mx-host=b.test,mx.b.test,10",
            "--host-record=dead.b.test,127.0.0.3", "--host-record=mx.b.test,127.0.0.2",
            "--host-record=aonly.b2.test,127.0.0.2", "--mx-host=nullmx.test,.,0",
            # selfloop.test's only exchanger is A under another name (A takes mail at that address)
            "--mx-host=selfloop.test,other-name.a.test,10", "--host-record=other-name.a.test,127.0.0.1"])
        procs.append(dns)
        a_cert, a_key = make_cert(work, "a", ["a.test"])
        b_cert, b_key = make_cert(work, "b", ["mx.b.test", "aonly.b2.test"])
        creds = os.path.join(work, "credentials")
        subprocess.run([REFSMTPD, "passwd", "alice", "--credentials", creds, "--iterations", "1000"], input="s3cret\n",
                       text=True, check=True, capture_output=True)

        # B's port, free on 127.0.0.1 too: A takes mail there itself (see selfloop.test).
        while True:
            b_port = free_port("127.0.0.2")
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", b_port))
                    break
                except OSError:
                    continue
        b_mail = os.path.join(work, "b-mail")
        b, b_ports = start_refsmtpd(REFSMTPD, "--listen", "mx=127.0.0.2:%d" % b_port, "--listen", "submission=127.0.0.2:0",
                                    "--credentials", creds, "--hostname", "mx.b.test",
                                    "--domain", "b.test", "--domain", "aonly.b2.test", "--spool", os.path.join(work, "b-spool"),
                                    "--mail-root", b_mail, "--tls-cert", b_cert, "--tls-key", b_key, listeners=2)
        procs.append(b)
        a_mail = os.path.join(work, "a-mail")
        a_args = ["--hostname", "a.test", "--domain", "a.test", "--tls-cert", a_cert, "--tls-key", a_key,
                  "--credentials", creds, "--relay", "mx", "--dns-server", "127.0.0.1:%d" % dns_port,
                  "--relay-port", str(b_port), "--relay-tls", "required", "--relay-connect-timeout", "3s",
                  "--retry-intervals", "1h"]
        a, a_ports = start_refsmtpd(REFSMTPD, "--listen", "submission=127.0.0.1:0", "--listen", "mx=127.0.0.1:%d" % b_port,
                                    "--spool", os.path.join(work, "a-spool"), "--mail-root", a_mail, "--relay-ca", b_cert,
                                    *a_args, listeners=2)
        procs.append(a)

        body = ("From: alice@a.test\r\nTo: bob@b.test\r\nSubject: across\r\n\r\nline one\r\n.leading dot\r\n"
                "caf\u00e9 in 8 bits\r\n" + "y" * 990 + "\r\nlast\r\n").encode("utf-8")
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with smtplib.SMTP("127.0.0.1", a_ports["submission"], timeout=10, local_hostname="client.a.test") as s:
            s.starttls(context=ctx)
            s.login("alice", "s3cret")
            refused = s.sendmail("alice@a.test", ["bob@b.test", "carol@aonly.b2.test", "x@nullmx.test", "y@nowhere.test",
                                                  "z@selfloop.test"],
                                 body, mail_options=["BODY=8BITMIME"])
            check(refused == {}, "A accepts all five recipients from the authenticated user")

        files = wait_for_files(os.path.join(b_mail, "bob", "Maildir", "new"), 1)
        check(len(files) == 1, "the message arrived in bob's Maildir on B")
        if files:
            data = open(os.path.join(b_mail, "bob", "Maildir", "new", files[0]), "rb").read()
            lines = data.split(b"\n")
            check(lines[0] == b"Return-Path: <alice@a.test>", "B adds Return-Path")
            check(lines[1] == b"Received: from a.test (127.0.0.1)" and lines[2].startswith(b"\tby mx.b.test (refsmtp) with ESMTPS id "),
                  "B's Received: header is on top, naming A and TLS (got %r)" % lines[1:3])
            check(lines[4] == b"Received: from client.a.test (127.0.0.1)" and lines[5].startswith(b"\tby a.test (refsmtp) with ESMTPSA id "),
                  "A's Received: header follows (authenticated, TLS)")
            check(data.endswith(body.replace(b"\r\n", b"\n")), "the body is byte for byte what the client sent")
        check(len(wait_for_files(os.path.join(b_mail, "carol", "Maildir", "new"), 1)) == 1,
              "aonly.b2.test (no MX, an A record) was reached through its implicit MX")

        bounces = wait_for_files(os.path.join(a_mail, "alice", "Maildir", "new"), 1)
        check(len(bounces) == 1, "one bounce for the three undeliverable recipients reached alice on A")
        if bounces:
            dsn = open(os.path.join(a_mail, "alice", "Maildir", "new", bounces[0]), "rb").read().decode("utf-8", "replace")
            check("Status: 5.1.10" in dsn and "556 5.1.10" in dsn and "null MX" in dsn, "null MX: 556 5.1.10 (RFC 7505)")
            check("Final-Recipient: rfc822; y@nowhere.test" in dsn and "Status: 5.1.2" in dsn, "NXDOMAIN: 5.1.2")
            check("Final-Recipient: rfc822; z@selfloop.test" in dsn and "Status: 5.4.6" in dsn and "loops back" in dsn,
                  "an MX at an address where A itself takes mail is A: 5.4.6, not a connection to itself")
            check("bob@b.test" not in dsn.split("text/rfc822-headers")[0], "the delivered recipients are not in the report")

        # A second sender that does not trust B's certificate: required TLS fails, nothing is
        # sent, the message stays queued (deferred), and no bounce is made.
        a2_mail = os.path.join(work, "a2-mail")
        a2, a2_ports = start_refsmtpd(REFSMTPD, "--listen", "submission=127.0.0.1:0", "--spool", os.path.join(work, "a2-spool"),
                                      "--mail-root", a2_mail, "--relay-ca", a_cert, *a_args)
        procs.append(a2)
        a2_log = LogTail(a2)
        with smtplib.SMTP("127.0.0.1", a2_ports["submission"], timeout=10, local_hostname="client.a.test") as s:
            s.starttls(context=ctx)
            s.login("alice", "s3cret")
            s.sendmail("alice@a.test", ["dave@b.test"], b"Subject: untrusted\r\n\r\nnot in the clear\r\n")
        # The attempt is over once the queue has recorded it (deferred).
        check(a2_log.wait_for("what=\"deferred until"), "A2 tried, and deferred the message")
        check(maildir_files(b_mail, "dave") == [], "nothing was delivered past an unverified certificate")
        check(maildir_files(a2_mail, "alice") == [], "no bounce: the failure is temporary")
        check(len(queued_ids(os.path.join(work, "a2-spool"))) == 1, "the message is in A2's queue (its journal)")
        stop(a2)
        err = a2_log.text()
        check("TLS handshake" in err and "certificate verify failed" in err,
              "A2's log says why: the certificate did not verify")
        # Still queued: a restart of A2 recovers it from its spool.
        a2b, _ = start_refsmtpd(REFSMTPD, "--listen", "submission=127.0.0.1:0", "--spool", os.path.join(work, "a2-spool"),
                                "--mail-root", a2_mail, "--relay-ca", a_cert, *a_args)
        stop(a2b)
        check("event=recovery queued=1" in a2b.stderr.read(), "the message is still queued on A2 (recovered at restart)")
        # A smarthost with AUTH: every domain goes to B's submission port, found by name through
        # DNS (A record, no MX), over verified STARTTLS, authenticated from a credentials file.
        auth_file = os.path.join(work, "smarthost-auth")
        with open(auth_file, "w") as f:
            f.write("alice:s3cret\n")
        a3_mail = os.path.join(work, "a3-mail")
        a3, a3_ports = start_refsmtpd(REFSMTPD, "--listen", "submission=127.0.0.1:0", "--spool", os.path.join(work, "a3-spool"),
                                      "--mail-root", a3_mail, "--relay-ca", b_cert, *a_args,
                                      "--route", "*=mx.b.test:%d;tls=required;auth=%s" % (b_ports["submission"], auth_file))
        procs.append(a3)
        with smtplib.SMTP("127.0.0.1", a3_ports["submission"], timeout=10, local_hostname="client.a.test") as s:
            s.starttls(context=ctx)
            s.login("alice", "s3cret")
            s.sendmail("alice@a.test", ["erin@b.test"], b"Subject: via smarthost\r\n\r\nauthenticated hop\r\n",
                       mail_options=["AUTH=alice@a.test"])
        files = wait_for_files(os.path.join(b_mail, "erin", "Maildir", "new"), 1)
        check(len(files) == 1, "the smarthost route delivered to B's submission port")
        if files:
            data = open(os.path.join(b_mail, "erin", "Maildir", "new", files[0]), "rb").read()
            check(b"\tby mx.b.test (refsmtp) with ESMTPSA id " in data, "B saw an authenticated, encrypted client (ESMTPSA)")

        stop(b)
        err = b.stderr.read()
        check("role=submission" in err and "auth=alice@a.test" in err,
              "the smarthost hop passed the sender's AUTH=alice@a.test on (RFC 4954 §5)")
        stop(a)
        err = a.stderr.read()
        check("dead.b.test[127.0.0.3]:%d connect:" % b_port in err, "A tried the preferred MX (refused) first")
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(work, ignore_errors=True)
    finish()


if __name__ == "__main__":
    main()
