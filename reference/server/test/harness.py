"""Shared helpers for the Python tests that drive refsmtpd from outside: checks that record
failures, bounded waits, and starting/stopping the daemon on free loopback ports."""
import os
import subprocess
import sys
import threading
import time

failures = []


def check(cond, what):
    """Records one named check; the script's exit status is decided by finish()."""
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failures.append(what)


def finish():
    if failures:
        print("%d check(s) failed" % len(failures))
    sys.exit(1 if failures else 0)


def wait_until(cond, timeout=15.0):
    """Polls cond() until it holds or the timeout passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def wait_for_files(directory, count, timeout=15.0):
    """The sorted file names in directory once there are at least count (or at the timeout)."""
    wait_until(lambda: os.path.isdir(directory) and len(os.listdir(directory)) >= count, timeout)
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def start_refsmtpd(refsmtpd, *args, listeners=1):
    """Starts refsmtpd with args (which include the --listen options); returns the process and
    {role: port} read from its 'listening role=... port=...' lines."""
    p = subprocess.Popen([refsmtpd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ports = {}
    for _ in range(listeners):
        line = p.stdout.readline()
        if "port=" not in line:
            p.kill()
            raise SystemExit("refsmtpd did not start: %r %s" % (line, p.stderr.read()))
        fields = dict(f.split("=", 1) for f in line.split()[1:])
        ports[fields["role"]] = int(fields["port"])
    return p, ports


def reply(f):
    """One whole SMTP reply (possibly multi-line) read from a socket file, as bytes; b'' at EOF."""
    out = b""
    while True:
        line = f.readline()
        out += line
        if not line or line[3:4] != b"-":
            return out


class LogTail:
    """Collects a running refsmtpd's stderr lines on a thread, so a test can wait for an event
    (with a deadline) instead of sleeping. Use its text() instead of p.stderr.read()."""

    def __init__(self, p):
        self.lines = []
        self.thread = threading.Thread(target=self._read, args=(p.stderr,), daemon=True)
        self.thread.start()

    def _read(self, stream):
        for line in stream:
            self.lines.append(line)

    def wait_for(self, text, timeout=15.0):
        return wait_until(lambda: any(text in l for l in list(self.lines)), timeout)

    def text(self):
        self.thread.join(timeout=5)  # the process has been stopped: read to the end
        return "".join(self.lines)


def stop(p, timeout=15):
    if p.poll() is None:
        p.terminate()
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def queued_ids(spool):
    """The ids of the messages in a refsmtpd spool, read without changing it: envelope files in
    queue/, plus messages accepted into the journal (journal/*.seg: records "RJ1 M|U|T id ..."
    each ending in an END line) and not yet removed by a tombstone. (A test's own reader of the
    format documented in reference/queue/include/refsmtp/queue/spool.hpp.)"""
    ids = set()
    qdir = os.path.join(spool, "queue")
    if os.path.isdir(qdir):
        ids.update(n[:-4] for n in os.listdir(qdir) if n.endswith(".env"))
    jdir = os.path.join(spool, "journal")
    for name in sorted(os.listdir(jdir)) if os.path.isdir(jdir) else []:
        data = open(os.path.join(jdir, name), "rb").read()
        pos = 0
        while True:
            lf = data.find(b"\n", pos)
            if lf < 0:
                break
            fields = data[pos:lf].decode("ascii", "replace").split(" ")
            if len(fields) < 3 or fields[0] != "RJ1":
                break
            kind, mid = fields[1], fields[2]
            size = int(fields[3]) + int(fields[4]) if kind in ("M", "U") and len(fields) == 5 else 0
            end = data.find(b"\n", lf + 1 + size)
            if end < 0 or not data[lf + 1 + size:end].startswith(b"END "):
                break  # a torn record ends the segment
            if kind == "M":
                ids.add(mid)
            elif kind == "T":
                ids.discard(mid)
            pos = end + 1
    return ids
