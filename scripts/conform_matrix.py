#!/usr/bin/env python3
"""Prints the conformance matrix (case x server) from smtpconform JSON reports and checks each
server's results against its committed expectations file.

    scripts/conform_matrix.py [--expectations DIR] NAME=REPORT.json ...

An expectations file, DIR/NAME.txt, lists the cases that server is known to fail, one per line
as "case-name: reason" (the reason checked by hand: a real deviation of that server, not a
runner bug); "#" starts a comment. A server without a file is expected to fail nothing.
Exit status: 0 when every server's failures (fail or error) are exactly its expected ones,
1 when results drifted (a new failure, or an expected failure that now passes), 2 on bad input.
"""
import argparse
import json
import os
import sys


def load_expectations(path):
    expected = {}
    if not os.path.exists(path):
        return expected
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, reason = line.partition(":")
            if not sep or not name.strip() or not reason.strip():
                raise ValueError("%s:%d: expected 'case-name: reason'" % (path, lineno))
            expected[name.strip()] = reason.strip()
    return expected


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--expectations", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                                           "conformance", "expectations"))
    ap.add_argument("reports", nargs="+", metavar="NAME=REPORT.json")
    args = ap.parse_args()

    servers, results, meta = [], {}, {}
    for spec in args.reports:
        name, sep, path = spec.partition("=")
        if not sep:
            print("conform_matrix: %r: expected NAME=REPORT.json" % spec, file=sys.stderr)
            return 2
        try:
            with open(path, encoding="utf-8") as f:
                report = json.load(f)
        except (OSError, ValueError) as e:
            print("conform_matrix: %s: %s" % (path, e), file=sys.stderr)
            return 2
        servers.append(name)
        for c in report["cases"]:
            results.setdefault(c["case"], {})[name] = c
            meta[c["case"]] = c

    mark = {"pass": "pass", "fail": "FAIL", "error": "ERROR", "skip": "skip"}
    width = max(len(c) for c in results) + 2
    cols = [max(len(s), 5) + 2 for s in servers]
    order = sorted(results, key=lambda c: (meta[c]["rfc"].split(" §")[0], c))
    print("%-*s%-8s" % (width, "case", "level") + "".join("%-*s" % (w, s) for s, w in zip(servers, cols)))
    rfc = None
    for case in order:
        this_rfc = meta[case]["rfc"].split(" §")[0]
        if this_rfc != rfc:
            rfc = this_rfc
            print("-- %s" % rfc)
        row = "%-*s%-8s" % (width, case, meta[case]["level"])
        for s, w in zip(servers, cols):
            row += "%-*s" % (w, mark.get(results[case].get(s, {}).get("outcome"), "-"))
        print(row)
    print()
    for s in servers:
        counts = {}
        for case in results:
            o = results[case].get(s, {}).get("outcome")
            if o:
                counts[o] = counts.get(o, 0) + 1
        print("%-10s %s" % (s + ":", ", ".join("%d %s" % (counts[k], k) for k in ("pass", "fail", "error", "skip") if k in counts)))

    drift = []
    for s in servers:
        try:
            expected = load_expectations(os.path.join(args.expectations, s + ".txt"))
        except ValueError as e:
            print("conform_matrix: %s" % e, file=sys.stderr)
            return 2
        failed = {c for c in results if results[c].get(s, {}).get("outcome") in ("fail", "error")}
        for c in sorted(failed - set(expected)):
            drift.append("%s: %s now fails (not in its expectations): %s" % (s, c, results[c][s]["reason"]))
        for c in sorted(set(expected) - failed):
            got = results.get(c, {}).get(s, {}).get("outcome", "not run")
            drift.append("%s: %s was expected to fail (%s) but is %s" % (s, c, expected[c], got))
    if drift:
        print("\nResults drifted from conformance/expectations:")
        for d in drift:
            print("  " + d)
        return 1
    print("\nEvery server failed exactly the cases in its expectations file.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
