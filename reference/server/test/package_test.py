#!/usr/bin/env python3
"""The Debian package as a user installs it: cpack builds it from this build, dpkg -i installs it,
the installed refsmtpd (packaged configuration, on a free loopback port) takes a message into the
packaged mail root as the packaged service user, and dpkg --purge takes it away again. Needs root
(dpkg); leaves the machine as it found it; skips (77) when refsmtp is already installed here."""
import glob
import os
import pwd
import shutil
import smtplib
import subprocess
import sys
import time

from harness import check, finish, start_refsmtpd, stop, wait_until

BUILD = sys.argv[1]


def run(*args, **kw):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=300, **kw)


def main():
    if os.geteuid() != 0:
        print("skip: dpkg needs root")
        return 77
    if run("dpkg-query", "-W", "-f=${Status}", "refsmtp").stdout.startswith("install ok"):
        print("skip: a refsmtp package is installed on this machine; not touching it")
        return 77
    before = {p: os.path.exists(p) for p in ("/var/spool/refsmtp", "/var/mail/refsmtp", "/etc/refsmtpd")}
    had_user = True
    try:
        pwd.getpwnam("refsmtp")
    except KeyError:
        had_user = False
    for old in glob.glob(os.path.join(BUILD, "refsmtp_*.deb")):
        os.remove(old)
    r = run("cpack", "-G", "DEB", cwd=BUILD)
    debs = glob.glob(os.path.join(BUILD, "refsmtp_*.deb"))
    check(r.returncode == 0 and len(debs) == 1, "cpack built one Debian package (%s)" % r.stdout[-300:])
    if len(debs) != 1:
        return finish()
    r = run("dpkg", "-i", debs[0])
    check(r.returncode == 0, "dpkg -i installs it (%s)" % (r.stdout + r.stderr)[-400:])
    p = None
    try:
        for f in ("/usr/bin/refsmtpd", "/usr/bin/smtpconform", "/usr/share/man/man1/refsmtpd.1",
                  "/usr/lib/systemd/system/refsmtpd.service", "/etc/refsmtpd/refsmtpd.toml"):
            check(os.path.exists(f), "installed: " + f)
        user = pwd.getpwnam("refsmtp")
        for d in ("/var/spool/refsmtp", "/var/mail/refsmtp"):
            st = os.stat(d)
            check(st.st_uid == user.pw_uid and st.st_mode & 0o777 == 0o700, "%s is the service user's, 0700" % d)
        conffiles = run("dpkg-query", "-W", "-f=${Conffiles}", "refsmtp").stdout
        check("/etc/refsmtpd/refsmtpd.toml" in conffiles, "the configuration is a conffile (kept on upgrade)")
        if shutil.which("systemd-analyze"):
            r = run("systemd-analyze", "verify", "/usr/lib/systemd/system/refsmtpd.service")
            problems = [l for l in (r.stdout + r.stderr).splitlines() if l.strip() and "man refsmtpd" not in l]
            check(not problems, "systemd-analyze verify finds nothing wrong with the unit (%r)" % problems)
        r = run("/usr/bin/refsmtpd", "check-config", "--config", "/etc/refsmtpd/refsmtpd.toml")
        check(r.returncode == 0, "the packaged configuration passes check-config (%s)" % r.stderr)
        # The packaged configuration, but on a free port (the command line wins over the file).
        p, ports = start_refsmtpd("/usr/bin/refsmtpd", "--config", "/etc/refsmtpd/refsmtpd.toml", "--listen", "mx=127.0.0.1:0")
        with smtplib.SMTP("127.0.0.1", ports["mx"], timeout=10, local_hostname="client.test") as s:
            s.sendmail("a@client.test", ["pkgtest@localhost"], b"Subject: packaged\r\n\r\nthrough the package\r\n")
        new = "/var/mail/refsmtp/pkgtest/Maildir/new"
        check(wait_until(lambda: os.path.isdir(new) and os.listdir(new), 10), "the message reached the packaged mail root")
        if os.path.isdir(new) and os.listdir(new):
            f = os.path.join(new, os.listdir(new)[0])
            check(os.stat(f).st_uid == user.pw_uid and b"through the package" in open(f, "rb").read(),
                  "delivered by the service user, body intact")
    finally:
        if p:
            stop(p)
        r = run("dpkg", "--purge", "refsmtp")
        check(r.returncode == 0 and not os.path.exists("/usr/bin/refsmtpd"), "dpkg --purge removes it")
        for path, existed in before.items():
            if not existed:
                shutil.rmtree(path, ignore_errors=True)
        if not had_user:
            run("deluser", "--system", "--quiet", "refsmtp")
            run("delgroup", "--system", "--quiet", "refsmtp")
    return finish()


if __name__ == "__main__":
    sys.exit(main())
