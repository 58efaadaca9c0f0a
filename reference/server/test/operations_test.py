#!/usr/bin/env python3
"""refsmtpd operations: connection limits, idle and slow-client timeouts, graceful drain on
SIGTERM, certificate reload on SIGHUP. Every wait is bounded; daemons are always stopped."""
import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile

from harness import check, failures, finish, reply, start_refsmtpd, stop, wait_for_files, wait_until
import time

REFSMTPD = sys.argv[1]



def start(*args):
    p, ports = start_refsmtpd(REFSMTPD, "--listen", "mx=127.0.0.1:0", "--hostname", "mx.test", *args)
    return p, ports["mx"]


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s, s.makefile("rb")


def make_cert(path_cert, path_key, cn):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + cn, "-days", "2",
                    "-keyout", path_key, "-out", path_cert], check=True, capture_output=True)


def main():
    work = tempfile.mkdtemp(prefix="refsmtpd-ops-")
    capture = os.path.join(work, "capture")
    os.makedirs(capture)
    base = ["--test-mode", "--capture-dir", capture, "--domain", "example.test"]
    try:
        # Connection limits: the third connection from one address gets 421 4.7.0.
        p, port = start(*base, "--max-connections-per-client", "2")
        try:
            a, fa = connect(port)
            b, fb = connect(port)
            check(reply(fa).startswith(b"220 ") and reply(fb).startswith(b"220 "), "two connections greeted")
            c, fc = connect(port)
            r = reply(fc)
            check(r.startswith(b"421 4.7.0"), "third connection refused with 421 4.7.0 (got %r)" % r)
            check(fc.readline() == b"", "and closed")
            for s in (a, b, c):
                s.close()
        finally:
            stop(p)

        # Idle timeout (§4.5.3.2.7, set to 1 s): 421 4.4.2 and close.
        p, port = start(*base, "--timeout-command", "1")
        try:
            a, fa = connect(port)
            reply(fa)
            t0 = time.monotonic()
            r = reply(fa)
            check(r.startswith(b"421 4.4.2") and time.monotonic() - t0 < 5, "idle client timed out with 421 4.4.2")
            a.close()
        finally:
            stop(p)

        # A client trickling NOOPs still meets the connection time limit.
        p, port = start(*base, "--timeout-command", "2", "--max-connection-time", "2")
        try:
            a, fa = connect(port)
            reply(fa)
            got = b""
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                a.sendall(b"NOOP\r\n")
                r = reply(fa)
                if not r.startswith(b"250"):
                    got = r
                    break
                time.sleep(0.3)  # the client's pace: slow, never idle long enough to time out
            check(got.startswith(b"421 4.4.2") and b"time limit" in got, "trickling client cut off at the time limit")
            a.close()
        finally:
            stop(p)

        # SIGTERM drains: an idle session gets 421 at once; a transaction in progress finishes.
        p, port = start(*base)
        try:
            idle, fi = connect(port)
            reply(fi)
            idle.sendall(b"EHLO idle.test\r\n")
            reply(fi)
            busy, fb = connect(port)
            reply(fb)
            for cmd in (b"EHLO busy.test\r\n", b"MAIL FROM:<a@client.test>\r\n", b"RCPT TO:<b@example.test>\r\n", b"DATA\r\n"):
                busy.sendall(cmd)
                reply(fb)
            busy.sendall(b"Subject: drain\r\n\r\nfirst half\r\n")
            p.send_signal(signal.SIGTERM)
            r = reply(fi)
            check(r.startswith(b"421 4.3.2"), "idle session told 421 4.3.2 on SIGTERM (got %r)" % r)
            busy.sendall(b"second half\r\n.\r\n")
            r = reply(fb)
            check(r.startswith(b"250 "), "transaction in progress finished with 250 during the drain (got %r)" % r)
            r = reply(fb)
            check(r.startswith(b"421 4.3.2"), "then that session got 421 too")
            try:
                p.wait(timeout=10)
                check(p.returncode == 0, "refsmtpd exited cleanly after draining")
            except subprocess.TimeoutExpired:
                check(False, "refsmtpd exited after draining")
            files = os.listdir(capture)
            check(len(files) == 1, "the drained transaction's message was kept")
            idle.close()
            busy.close()
        finally:
            stop(p)

        # An oversized message is read to its end and refused with 552 (RFC 1870 §6.3), and the
        # connection stays in step for the next transaction.
        p, port = start(*base, "--max-size", "2000")
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=10, local_hostname="client.test") as s:
                s.ehlo("client.test")
                # No SIZE= on MAIL (smtplib would send one and be refused up front): the limit
                # must then be enforced while the data streams in.
                s.mail("a@client.test")
                s.rcpt("b@example.test")
                code, _ = s.data(b"Subject: big\r\n\r\n" + (b"y" * 70 + b"\r\n") * 60)
                check(code == 552, "oversized message read to its end, then refused with 552 (got %d)" % code)
                code, _ = s.mail("a@client.test", ["SIZE=99999"])
                check(code == 552, "a declared SIZE over the limit is refused at MAIL with 552 (got %d)" % code)
                check(s.sendmail("a@client.test", ["b@example.test"], b"Subject: small\r\n\r\nok\r\n") == {},
                      "the next message on the same connection is accepted")
        finally:
            stop(p)

        # Logs: key=value text by default, JSON lines with --log-json; one line per transaction.
        for fmt in ("text", "json"):
            p, port = start(*base, *(["--log-json"] if fmt == "json" else []))
            with smtplib.SMTP("127.0.0.1", port, timeout=10, local_hostname="client.test") as s:
                s.sendmail("a@client.test", ["b@example.test"], b"Subject: log\r\n\r\nx\r\n")
            p.terminate()
            _, err = p.communicate(timeout=15)
            lines = [l for l in err.splitlines() if l.strip()]
            if fmt == "json":
                import json
                events = [json.loads(l) for l in lines]
                msg = [e for e in events if e.get("event") == "message"]
                check(len(msg) == 1 and msg[0]["from"] == "<a@client.test>" and msg[0]["rcpts"] == 1 and msg[0]["size"] > 0
                      and msg[0]["verdict"] == "250" and msg[0]["client"] == "127.0.0.1" and "ts" in msg[0],
                      "JSON log: one message event with sender, recipients, verdict")
            else:
                check(any(l.startswith("refsmtpd event=connect conn=1 role=mx client=127.0.0.1") for l in lines),
                      "text log: connect line with conn, role and client")
                check(any("event=message" in l and "from=<a@client.test>" in l for l in lines), "text log: message line")

        # Delivery log lines, one per recipient and attempt (Postfix-like), and refused recipients:
        # a local mailbox (status=sent), an alias to a domain this server cannot reach
        # (status=bounced, with its DSN code and reason), an unknown user refused at RCPT.
        table = os.path.join(work, "log-recipients")
        open(table, "w").write("domains example.test\nb\nfwd: x@remote.test\n")
        for fmt in ("text", "json"):
            spool, mail = os.path.join(work, "log-spool-" + fmt), os.path.join(work, "log-mail-" + fmt)
            p, port = start("--spool", spool, "--mail-root", mail, "--recipients", table,
                            *(["--log-json"] if fmt == "json" else []))
            with smtplib.SMTP("127.0.0.1", port, timeout=10, local_hostname="client.test") as s:
                s.ehlo()
                s.docmd("FROB")  # refused by the session itself: an event=refused line
                s.mail("a@client.test")
                code, _ = s.rcpt("nobody@example.test")
                check(code == 550, "an unknown user is refused at RCPT (got %d)" % code)
                s.rset()
                s.sendmail("a@client.test", ["b@example.test", "fwd@example.test"], b"Subject: log\r\n\r\nx\r\n")
            new = os.path.join(mail, "postmaster", "Maildir", "new")
            wait_until(lambda: os.path.isdir(new) and os.listdir(new), 10)  # the last of the three deliveries
            p.terminate()  # the pass that delivered is finished and logged before the process exits
            _, err = p.communicate(timeout=15)
            lines = [l for l in err.splitlines() if l.strip()]
            if fmt == "json":
                import json
                events = [json.loads(l) for l in lines]
                deliveries = [e for e in events if e.get("event") == "delivery"]
                sent = [e for e in deliveries if e["rcpt"] == "<b@example.test>"]
                check(len(sent) == 1 and sent[0]["status"] == "sent" and sent[0]["relay"] == "local"
                      and sent[0]["dsn"] == "2.0.0" and isinstance(sent[0]["delay"], int) and sent[0]["queue_id"],
                      "JSON delivery line for the local mailbox: status=sent, relay, dsn, delay as a number (%r)" % sent)
                bounced = [e for e in deliveries if e["rcpt"] == "<fwd@example.test>"]
                check(len(bounced) == 1 and bounced[0]["status"] == "bounced" and bounced[0]["dsn"] == "5.7.1"
                      and "remote.test" in bounced[0]["reason"],
                      "JSON delivery line for the alias to an unreachable domain: bounced with its reason (%r)" % bounced)
                # The bounce to the (foreign, unreachable) sender fails too; postmaster hears of it
                # at the domainless <Postmaster>, which is always local.
                notice = [e for e in deliveries if e["rcpt"] == "<Postmaster>"]
                check(len(notice) == 1 and notice[0]["status"] == "sent",
                      "the failed bounce is reported to <Postmaster>, delivered locally (%r)" % notice)
                frob = [e for e in events if e.get("event") == "refused"]
                check(len(frob) == 1 and frob[0]["command"] == "FROB" and frob[0]["verdict"].startswith("500 5.5.1"),
                      "a command the session refused is logged with its reply (%r)" % frob)
                refused = [e for e in events if e.get("event") == "rcpt"]
                check(len(refused) == 1 and refused[0]["rcpt"] == "<nobody@example.test>"
                      and refused[0]["verdict"].startswith("550 5.1.1"), "the refused recipient is logged (%r)" % refused)
            else:
                check(any("event=delivery" in l and "rcpt=<b@example.test>" in l and "status=sent" in l and "dsn=2.0.0" in l
                          for l in lines), "text delivery line: status=sent for the local mailbox")
                check(any("event=delivery" in l and "status=bounced" in l and "dsn=5.7.1" in l for l in lines),
                      "text delivery line: status=bounced with the DSN code")
                check(any("event=rcpt" in l and "rcpt=<nobody@example.test>" in l and 'verdict="550 5.1.1' in l
                          for l in lines), "text log: the refused recipient with its reply")

        # Holding load: idle connections fill the table; past --stress-percent the new ones get
        # the short --stress-timeout, give their places back, and a real client gets in within
        # seconds instead of waiting out the 5-minute command timeout.
        p, port = start(*base, "--log-json", "--max-connections", "40", "--stress-percent", "50", "--stress-timeout", "1")
        idle = []
        greeted = 0
        try:
            for source in ("127.0.0.2", "127.0.0.3"):
                for _ in range(20):
                    c = socket.socket()
                    c.settimeout(10)
                    c.bind((source, 0))
                    c.connect(("127.0.0.1", port))
                    greeted += reply(c.makefile("rb")).startswith(b"220 ")
                    idle.append(c)
            check(greeted == 40, "40 idle connections from two addresses fill the table (%d greeted)" % greeted)
            deadline = time.monotonic() + 15
            got_in = False
            while time.monotonic() < deadline and not got_in:
                try:
                    with smtplib.SMTP("127.0.0.1", port, timeout=10, local_hostname="client.test",
                                      source_address=("127.0.0.4", 0)) as s:
                        got_in = s.sendmail("a@client.test", ["b@example.test"], b"Subject: through\r\n\r\nx\r\n") == {}
                except (smtplib.SMTPConnectError, smtplib.SMTPServerDisconnected, ConnectionError):
                    time.sleep(0.2)
            check(got_in, "a real client got through while 40 idle connections had filled the table")
        finally:
            for c in idle:
                c.close()
            p.terminate()
            _, err = p.communicate(timeout=15)
        check('"event":"stress","state":"on"' in err, "stress was logged when it began")

        # With the default limits, 5,000 idle connections from 50 addresses (100 each) are held or
        # refused (20 per address), and a client from elsewhere is served at once. (Its log, a line
        # per connection, goes nowhere: an unread pipe would fill and stall the server.)
        p = subprocess.Popen([REFSMTPD, "--listen", "mx=127.0.0.1:0", "--hostname", "mx.test", *base],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        port = int(p.stdout.readline().strip().split("port=")[1])
        crowd = []
        try:
            for a_ in range(50):
                for _ in range(100):
                    c = socket.socket()
                    c.settimeout(10)
                    c.bind(("127.0.1.%d" % (a_ + 1), 0))
                    c.connect(("127.0.0.1", port))
                    crowd.append(c)
            first = [c.recv(200)[:3] for c in crowd]
            check(first.count(b"220") == 1000 and first.count(b"421") == 4000,
                  "5,000 idle connections: 20 per address held, the rest told 421 (%d, %d)"
                  % (first.count(b"220"), first.count(b"421")))
            # Served, not refused: no retry loop here, one try (a refused client gets 421 at once).
            with smtplib.SMTP("127.0.0.1", port, timeout=10, local_hostname="client.test",
                              source_address=("127.0.2.1", 0)) as s:
                ok = s.sendmail("a@client.test", ["b@example.test"], b"Subject: crowd\r\n\r\nx\r\n") == {}
            check(ok, "a client from another address is served on its first try")
        finally:
            for c in crowd:
                c.close()
            stop(p)

        # Queue tools: list, show, hold, flush, release, delete on a running refsmtpd (its control
        # socket), then on the stopped spool itself. Deliveries go to an LMTP port nobody listens
        # on, so the message stays deferred.
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        dead_port = closed.getsockname()[1]
        closed.close()
        qspool, qmail = os.path.join(work, "q-spool"), os.path.join(work, "q-mail")

        def queue(*args):
            r = subprocess.run([REFSMTPD, "queue", *args, "--spool", qspool], capture_output=True, text=True, timeout=90)
            return r.returncode, r.stdout, r.stderr

        p, port = start("--spool", qspool, "--mail-root", qmail, "--domain", "example.test", "--delivery", "lmtp",
                        "--lmtp", "127.0.0.1:%d" % dead_port)
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=10, local_hostname="client.test") as s:
                s.sendmail("a@client.test", ["b@example.test"], b"Subject: queued\r\n\r\nx\r\n")

            def attempts(qid):
                rc, out, _ = queue("show", qid)
                line = [l for l in out.splitlines() if l.startswith("attempts ")]
                return int(line[0].split()[1]) if rc == 0 and line else -1
            rc, out, err = queue("list")
            rows = out.split()
            check(rc == 0 and len(out.splitlines()) == 1 and rows[3] == "<a@client.test>" and rows[4] == "1/1",
                  "queue list: one message, its sender, 1 of 1 recipients pending (%r %r)" % (out, err))
            qid = rows[0] if rows else "?"
            check(wait_until(lambda: attempts(qid) >= 1, 10), "the first attempt was made and deferred")
            rc, out, _ = queue("show", qid)
            check(rc == 0 and "rcpt <b@example.test> pending 451" in out, "queue show: the recipient and the last reply (%r)" % out)
            rc, _, _ = queue("hold", qid)
            rc2, out, _ = queue("list")
            check(rc == 0 and out.split()[5] == "held", "queue hold: listed as held (%r)" % out)
            rc, _, err = queue("flush", qid)
            check(rc == 1 and "on hold" in err, "a held message is not flushed (rc %d, %r)" % (rc, err))
            before = attempts(qid)
            rc, _, _ = queue("release", qid)
            check(rc == 0 and wait_until(lambda: attempts(qid) > before, 10),
                  "queue release: tried again at once, not at the retry time (5 minutes away)")
            before = attempts(qid)
            rc, _, _ = queue("flush")
            check(rc == 0 and wait_until(lambda: attempts(qid) > before, 10), "queue flush: every message tried again at once")
            # A second daemon on the same spool is refused.
            r = subprocess.run([REFSMTPD, "--listen", "mx=127.0.0.1:0", "--spool", qspool, "--mail-root", qmail,
                                "--domain", "example.test"], capture_output=True, text=True, timeout=10)
            check(r.returncode == 75 and "is using this spool" in r.stderr, "a second refsmtpd on one spool is refused (%r)" % r.stderr)
            rc, _, err = queue("delete", "no-such-id")
            check(rc == 1 and "no message no-such-id" in err, "a bad ID is a clear error (rc %d, %r)" % (rc, err))
            rc, _, err = queue("show")
            check(rc == 64, "show without an ID is a usage error (rc %d)" % rc)
        finally:
            stop(p)
        # Stopped: the tools work on the spool itself; flush needs a running daemon.
        rc, out, _ = queue("list")
        check(rc == 0 and out.split()[:1] == [qid], "queue list on the stopped spool (%r)" % out)
        rc, _, err = queue("flush")
        check(rc == 69 and "no refsmtpd runs" in err, "flush without a daemon says so (rc %d, %r)" % (rc, err))
        rc, _, _ = queue("delete", qid)
        rc2, out, _ = queue("list")
        check(rc == 0 and rc2 == 0 and out == "", "queue delete on the stopped spool removes it for good (%r)" % out)
        r = subprocess.run([REFSMTPD, "queue", "list", "--spool", os.path.join(work, "no-spool")], capture_output=True,
                           text=True, timeout=10)
        check(r.returncode == 66 and "no such spool" in r.stderr, "a missing spool is EX_NOINPUT (rc %d)" % r.returncode)

        # A TOML config file gives the same options as the command line.
        conf = os.path.join(work, "refsmtpd.toml")
        open(conf, "w").write('listen = ["mx=127.0.0.1:0"]\nhostname = "cfg.test"\ndomain = ["example.test"]\n'
                              'test-mode = true\ncapture-dir = "%s"\n' % capture)
        p = subprocess.Popen([REFSMTPD, "--config", conf], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = p.stdout.readline()
            check("port=" in line, "started from a config file")
            if "port=" in line:
                a, fa = connect(int(line.strip().split("port=")[1]))
                check(reply(fa).startswith(b"220 cfg.test "), "config file's hostname in the greeting")
                a.close()
        finally:
            stop(p)

        # Configuration errors name the file and line and exit 78 (EX_CONFIG); command-line
        # errors exit 64 (EX_USAGE) with the nearest option; a missing file named 66 (EX_NOINPUT).
        def run_bad(args, files=None):
            for name, text in (files or {}).items():
                open(os.path.join(work, name), "w").write(text)
            r = subprocess.run([REFSMTPD] + args, capture_output=True, text=True, timeout=10)
            return r.returncode, r.stderr
        bad_conf = os.path.join(work, "bad.toml")
        rc, err = run_bad(["--config", bad_conf], {"bad.toml": 'listen = ["mx=127.0.0.1:0"]\nlisen = "x"\n'})
        check(rc == 78 and bad_conf + ":2: lisen: unknown key (did you mean 'listen'?)" in err,
              "an unknown config key names file, line and the nearest key (rc %d, %r)" % (rc, err))
        rc, err = run_bad(["--config", bad_conf], {"bad.toml": 'mail-root = "m5\n'})
        check(rc == 78 and "not valid TOML" in err and bad_conf in err and " 1 | mail-root" in err,
              "an unterminated string is a TOML error with file and line, not a directory named '\"m5' (rc %d, %r)" % (rc, err))
        rc, err = run_bad(["--config", bad_conf], {"bad.toml": 'listen = ["mx=127.0.0.1:0"]\n\nmax-size = "big"\n'})
        check(rc == 78 and bad_conf + ":3: max-size" in err, "a bad config value names file and line (rc %d, %r)" % (rc, err))
        rc, err = run_bad(["--config", bad_conf], {"bad.toml": '[server]\nlisten = ["mx=127.0.0.1:0"]\n'})
        check(rc == 78 and bad_conf + ":1: server: a [table] is not used" in err, "a config section is refused (rc %d, %r)" % (rc, err))
        rc, err = run_bad(["--config", os.path.join(work, "missing.toml")])
        check(rc == 66 and "missing.toml" in err, "a missing config file is EX_NOINPUT (rc %d, %r)" % (rc, err))
        rc, err = run_bad(["--listne", "mx=127.0.0.1:0"])
        check(rc == 64 and "did you mean --listen?" in err, "a mistyped option gets 64 and a suggestion (rc %d, %r)" % (rc, err))
        rc, err = run_bad(["--recipients", os.path.join(work, "no-such-table"), "--listen", "mx=127.0.0.1:0"])
        check(rc == 66 and "no-such-table" in err, "a missing --recipients file is EX_NOINPUT (rc %d, %r)" % (rc, err))
        # check-config lists every problem a start would meet, and starts nothing.
        bad_table = os.path.join(work, "bad-table")
        open(bad_table, "w").write("alice\n")
        open_creds = os.path.join(work, "open-creds")
        open(open_creds, "w").write("")
        os.chmod(open_creds, 0o644)
        r = subprocess.run([REFSMTPD, "check-config", "--listen", "submission=127.0.0.1:0", "--recipients", bad_table,
                            "--credentials", open_creds, "--spool", os.path.join(work, "cc-spool"), "--mail-root",
                            os.path.join(work, "cc-mail"), "--user", "no-such-user-here"], capture_output=True, text=True,
                           timeout=10)
        lines = r.stderr.splitlines()
        check(r.returncode == 78 and any("no 'domains' line" in l for l in lines) and any("need TLS" in l for l in lines)
              and any("open to other users" in l for l in lines) and any("no-such-user-here: no such user" in l for l in lines),
              "check-config lists every problem and exits 78 (rc %d, %r)" % (r.returncode, r.stderr))
        check(not os.path.exists(os.path.join(work, "cc-spool")), "check-config creates nothing")
        r = subprocess.run([REFSMTPD, "check-config", "--listen", "mx=127.0.0.1:0", "--domain", "example.test", "--spool",
                            os.path.join(work, "cc-spool"), "--mail-root", os.path.join(work, "cc-mail")],
                           capture_output=True, text=True, timeout=10)
        check(r.returncode == 0 and "no problems found" in r.stdout, "check-config passes a good configuration (%r)" % r.stderr)

        # The command line wins over the file: its --hostname replaces the file's.
        conf2 = os.path.join(work, "both.toml")
        open(conf2, "w").write('listen = ["mx=127.0.0.1:0"]\nhostname = "file.test"\ndomain = ["example.test"]\n'
                               'test-mode = true\ncapture-dir = "%s"\n' % capture)
        p = subprocess.Popen([REFSMTPD, "--config", conf2, "--hostname", "cli.test"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            line = p.stdout.readline()
            if "port=" in line:
                a, fa = connect(int(line.strip().split("port=")[1]))
                check(reply(fa).startswith(b"220 cli.test "), "the command line's --hostname wins over the file's")
                a.close()
            else:
                check(False, "started with --config and --hostname")
        finally:
            stop(p)

        # --user: bind as root, then run as an unprivileged user (CI runs as root).
        if os.geteuid() == 0:
            import pwd
            nobody = pwd.getpwnam("nobody")
            spool, mail = os.path.join(work, "u-spool"), os.path.join(work, "u-mail")
            os.chmod(work, 0o755)
            p = subprocess.Popen([REFSMTPD, "--listen", "mx=127.0.0.1:0", "--user", "nobody", "--spool", spool,
                                  "--mail-root", mail, "--domain", "example.test"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                line = p.stdout.readline()
                check("port=" in line, "started with --user nobody")
                status = open("/proc/%d/status" % p.pid).read()
                uid = [l for l in status.splitlines() if l.startswith("Uid:")][0].split()[1:]
                check(all(int(u) == nobody.pw_uid for u in uid), "running as nobody (real, effective, saved uid)")
                with smtplib.SMTP("127.0.0.1", int(line.strip().split("port=")[1]), timeout=10, local_hostname="client.test") as s:
                    s.sendmail("a@client.test", ["u@example.test"], b"Subject: unprivileged\r\n\r\nx\r\n")
                d = os.path.join(mail, "u", "Maildir", "new")
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and not (os.path.isdir(d) and os.listdir(d)):
                    time.sleep(0.05)
                files = os.listdir(d) if os.path.isdir(d) else []
                check(len(files) == 1 and os.stat(os.path.join(d, files[0])).st_uid == nobody.pw_uid,
                      "the unprivileged daemon delivered, as nobody")
            finally:
                stop(p)
            # A root-only TLS key cannot be re-read after --user: said at start, not at the first SIGHUP.
            ucert, ukey = os.path.join(work, "u-cert.pem"), os.path.join(work, "u-key.pem")
            make_cert(ucert, ukey, "user.test")
            os.chmod(ukey, 0o600)
            p = subprocess.Popen([REFSMTPD, "--listen", "mx=127.0.0.1:0", "--user", "nobody", "--test-mode", "--capture-dir",
                                  os.path.join(work, "u-cap"), "--domain", "example.test", "--tls-cert", ucert, "--tls-key", ukey],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                check("port=" in p.stdout.readline(), "started with TLS and --user nobody")
            finally:
                stop(p)
                err = p.stderr.read()
            check("u-key.pem is not readable after --user: a SIGHUP reload will fail" in err,
                  "the unreadable key is reported at start (%r)" % err[-300:])
            # Test mode's capture mbox is made and handed to the user before privileges go.
            box = os.path.join(work, "u.mbox")
            p = subprocess.Popen([REFSMTPD, "--listen", "mx=127.0.0.1:0", "--user", "nobody", "--test-mode",
                                  "--capture-mbox", box, "--domain", "example.test"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                line = p.stdout.readline()
                check("port=" in line, "started with --user nobody --capture-mbox")
                with smtplib.SMTP("127.0.0.1", int(line.strip().split("port=")[1]), timeout=10, local_hostname="client.test") as s:
                    s.sendmail("a@client.test", ["u@example.test"], b"Subject: unprivileged\r\n\r\nx\r\n")
                check(os.stat(box).st_uid == nobody.pw_uid and b"Subject: unprivileged\n" in open(box, "rb").read(),
                      "the unprivileged daemon captured into its mbox, owned by nobody")
            finally:
                stop(p)
        else:
            print("note: not root, --user not exercised")

        # Four io threads, each with its own event loop: concurrent clients spread over them, and
        # every message they were told was accepted is captured exactly once, whole.
        box = os.path.join(work, "threads.mbox")
        p, port = start("--threads", "4", "--test-mode", "--capture-mbox", box, "--domain", "example.test",
                        "--max-connections-per-client", "50")
        try:
            import threading
            accepted, errors = [], []

            def client(k):
                try:
                    for n in range(25):
                        with smtplib.SMTP("127.0.0.1", port, timeout=10, local_hostname="c%d.test" % k) as s:
                            s.sendmail("a@client.test", ["x@example.test"],
                                       ("Subject: t%d-%d\r\n\r\n%s" % (k, n, ("z" * 100 + "\r\n") * n)).encode())
                            accepted.append("t%d-%d" % (k, n))
                except Exception as e:  # reported below, never lost in a thread
                    errors.append(repr(e))

            clients = [threading.Thread(target=client, args=(k,)) for k in range(8)]
            for t in clients:
                t.start()
            for t in clients:
                t.join(timeout=60)
            import mailbox
            captured = [(m["Subject"], m.get_payload()) for m in mailbox.mbox(box, create=False)]
            whole = all(body == ("z" * 100 + "\n") * int(sub.split("-")[1]) for sub, body in captured)
            check(not errors and len(accepted) == 200 and sorted(sub for sub, _ in captured) == sorted(accepted) and whole,
                  "--threads 4: 200 concurrent messages captured once each, whole (errors %r)" % errors[:3])
        finally:
            stop(p)

        # SIGHUP reloads the certificate for new connections.
        cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
        make_cert(cert, key, "first.test")
        p, port = start(*base, "--tls-cert", cert, "--tls-key", key)
        try:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE

            def served_cert():
                with smtplib.SMTP("127.0.0.1", port, timeout=10, local_hostname="client.test") as s:
                    s.ehlo("client.test")
                    s.starttls(context=ctx)
                    return s.sock.getpeercert(binary_form=True)

            first = served_cert()
            check(first == ssl.PEM_cert_to_DER_cert(open(cert).read()), "the first certificate is served")
            make_cert(cert + ".new", key + ".new", "second.test")
            os.replace(key + ".new", key)
            os.replace(cert + ".new", cert)
            p.send_signal(signal.SIGHUP)
            expected = ssl.PEM_cert_to_DER_cert(open(cert).read())
            deadline = time.monotonic() + 10
            second = first
            while time.monotonic() < deadline and second != expected:
                second = served_cert()
            check(second == expected, "after SIGHUP the new certificate is served")
        finally:
            stop(p)
            err = p.stderr.read()
        check("refsmtpd event=tls " in err and "version=TLSv1." in err and "cipher=" in err,
              "each STARTTLS is logged with the protocol version and cipher")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
    finish()
