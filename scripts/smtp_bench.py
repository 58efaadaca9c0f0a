#!/usr/bin/env python3
"""Messages per second over SMTP on loopback, measured with Postfix's smtp-source (1 KiB
messages), against: refsmtpd durable (queue + Maildir), refsmtpd --test-mode (capturing to a
directory, and to an mbox file), Postfix's smtp-sink (protocol only: the ceiling) and a private
Postfix delivering to Maildir. Servers alternate within each repetition; the median of REPEAT
runs is reported. For refsmtpd (durable) and Postfix, a second rate counts until every message
is delivered into the Maildir: the throughput they can sustain.

  scripts/bench smtp [MESSAGES]          (called by scripts/bench; MESSAGES default 2000)
"""
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REFSMTPD = sys.argv[1]
MESSAGES = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
REPEAT = int(os.environ.get("REPEAT", "1"))
SBIN = "/usr/sbin"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class LogCount:
    """Counts the lines of a growing log file that contain `needle`, reading only what is new
    (the benchmarked servers write their logs to files, never to a pipe that could stall them)."""

    def __init__(self, path, needle):
        self.path, self.needle, self.offset, self.count, self.rest = path, needle, 0, 0, b""

    def update(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        lines = (self.rest + data).split(b"\n")
        self.rest = lines.pop()
        self.count += sum(1 for line in lines if self.needle in line)
        return self.count

    def wait_for(self, n, timeout=300):
        """When the count reached n; RuntimeError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.update() < n:
            if time.monotonic() > deadline:
                raise RuntimeError("%s: %d of %d lines with %r" % (self.path, self.count, n, self.needle.decode()))
            time.sleep(0.01)  # a log file has no completion signal to wait on: it is polled
        return time.monotonic()


def stop_process(proc, timeout):
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_source(port, sessions):
    # conform@: the scripts/peers SMTP peers accept only conform@ and postmaster@example.test.
    cmd = [os.path.join(SBIN, "smtp-source"), "-s", str(sessions), "-m", str(MESSAGES), "-l", "1024",
           "-f", "bench@client.test", "-t", "conform@example.test", "127.0.0.1:%d" % port]
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, timeout=600)
    elapsed = time.monotonic() - t0
    if r.returncode != 0:
        raise RuntimeError("smtp-source failed: %s" % r.stderr.decode()[-300:])
    return MESSAGES / elapsed, t0


class Refsmtpd:
    NAMES = {None: "refsmtpd (durable: queue + Maildir)",
             "dir": "refsmtpd --test-mode --capture-dir (a file per message)",
             "mbox": "refsmtpd --test-mode --capture-mbox (one file)"}

    def __init__(self, work, capture):
        self.name = self.NAMES[capture]
        self.work, self.capture = work, capture

    def start(self):
        d = tempfile.mkdtemp(dir=self.work)
        args = [REFSMTPD, "--listen", "mx=127.0.0.1:0", "--hostname", "bench.test", "--domain", "example.test",
                "--max-connections-per-client", "1000", "--max-connections", "1000"]
        if self.capture == "dir":
            os.makedirs(os.path.join(d, "capture"))
            args += ["--test-mode", "--capture-dir", os.path.join(d, "capture")]
        elif self.capture == "mbox":
            args += ["--test-mode", "--capture-mbox", os.path.join(d, "capture.mbox")]
        else:
            args += ["--spool", os.path.join(d, "spool"), "--mail-root", os.path.join(d, "mail")]
        log = os.path.join(d, "refsmtpd.log")
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True)
        # Each message leaves the queue, delivered, with one "what=done" log line.
        self.done = LogCount(log, b"what=done")
        return int(self.proc.stdout.readline().strip().split("port=")[1])

    def delivered(self):
        """When the last message was delivered to its Maildir (durable mode only)."""
        return None if self.capture is not None else self.done.wait_for(MESSAGES)

    def stop(self):
        stop_process(self.proc, 30)


class Sink:
    name = "smtp-sink (protocol only, stores nothing)"

    def start(self):
        port = free_port()
        # As root, smtp-sink insists on a user to run as.
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen([os.path.join(SBIN, "smtp-sink"), *user, "127.0.0.1:%d" % port, "256"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port)
        return port

    def stop(self):
        stop_process(self.proc, 10)


class Postfix:
    name = "Postfix (private instance, Maildir)"

    def __init__(self, work):
        self.dir = os.path.join(work, "postfix")

    def start(self):
        r = subprocess.run([os.path.join(ROOT, "scripts", "peers"), "start", "postfix", self.dir], capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("postfix peer did not start: " + r.stdout[-300:] + r.stderr[-300:])
        fields = dict(l.split("=", 1) for l in r.stdout.split() if "=" in l)
        return int(fields["port"])

    def delivered(self):
        """When Postfix's log shows the last message delivered (status=sent) to its Maildir."""
        return LogCount(os.path.join(self.dir, "postfix.log"), b"status=sent").wait_for(MESSAGES)

    def stop(self):
        subprocess.run([os.path.join(ROOT, "scripts", "peers"), "stop", "postfix", self.dir], capture_output=True, timeout=60)


def idle_rss(connections):
    """RSS of a --test-mode refsmtpd holding `connections` idle connections (greeted, silent)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, connections + 100)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    connections = min(connections, want - 100)
    work = tempfile.mkdtemp(prefix="refsmtp-idle-")
    p = subprocess.Popen([REFSMTPD, "--listen", "mx=127.0.0.1:0", "--domain", "example.test", "--test-mode",
                          "--capture-dir", work, "--max-connections", str(connections + 10),
                          "--max-connections-per-client", str(connections + 10)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    socks = []
    try:
        port = int(p.stdout.readline().strip().split("port=")[1])
        for _ in range(connections):
            socks.append(socket.create_connection(("127.0.0.1", port)))
        for s in socks[-10:]:
            s.settimeout(10)
            s.recv(100)  # greeted: the server has set each one up
        rss = [l for l in open("/proc/%d/status" % p.pid) if l.startswith("VmRSS")][0].split()[1]
        return connections, int(rss)
    finally:
        for s in socks:
            s.close()
        stop_process(p, 30)
        shutil.rmtree(work, ignore_errors=True)


def main():
    if not os.path.exists(os.path.join(SBIN, "smtp-source")):
        raise SystemExit("smtp-source not found: it comes with Debian's postfix package (scripts/deps installs it)")
    work = tempfile.mkdtemp(prefix="refsmtp-bench-")
    os.chmod(work, 0o755)  # peers deliver as unprivileged users, who must reach their directories
    servers = [Refsmtpd(work, None), Refsmtpd(work, "dir"), Refsmtpd(work, "mbox"), Sink(), Postfix(work)]
    results = {}
    try:
        for rep in range(REPEAT):
            for server in servers:
                for sessions in (1, 20):
                    try:
                        port = server.start()
                    except Exception as e:  # a peer that cannot run here is reported, not fatal
                        results.setdefault((server.name, sessions), []).append(None)
                        print("skip %s: %s" % (server.name, e), file=sys.stderr)
                        continue
                    try:
                        rate, t0 = run_source(port, sessions)
                        delivered = getattr(server, "delivered", lambda: None)()
                    finally:
                        server.stop()
                    results.setdefault((server.name, sessions), []).append(rate)
                    print("%-56s sessions=%-2d %8.0f msgs/s" % (server.name, sessions, rate), file=sys.stderr)
                    if delivered is not None:
                        name = server.name + ", until all delivered"
                        results.setdefault((name, sessions), []).append(MESSAGES / (delivered - t0))
                        print("%-56s sessions=%-2d %8.0f msgs/s" % (name, sessions, results[(name, sessions)][-1]),
                              file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n%d x 1 KiB messages with smtp-source, median of %d run(s):\n" % (MESSAGES, REPEAT))
    print("| Server | 1 session | 20 sessions |")
    print("|---|---|---|")
    for name in dict.fromkeys(n for n, _ in results):
        cells = []
        for sessions in (1, 20):
            vals = [v for v in results.get((name, sessions), []) if v is not None]
            cells.append("%.0f msgs/s" % statistics.median(vals) if vals else "n/a")
        print("| %s | %s | %s |" % (name, cells[0], cells[1]))
    n, kb = idle_rss(int(os.environ.get("IDLE", "10000")))
    print("\nrefsmtpd RSS with %d idle connections: %.1f MiB" % (n, kb / 1024.0))


if __name__ == "__main__":
    main()
