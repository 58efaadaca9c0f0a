#!/usr/bin/env python3
"""Prints the conformance matrix (case x server) from smtpconform JSON reports.

    scripts/conform_matrix.py NAME=REPORT.json ...

Each server's results are compared with its baseline by smtpconform itself (--expect
conformance/expectations/NAME.txt); this only lays the reports side by side.
Exit status: 0, or 2 on bad input.
"""
import argparse
import json
import os
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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

    mark = {"pass": "pass", "fail": "FAIL", "error": "ERROR", "skip": "skip", "deviation": "deviat.", "inconclusive": "inconcl."}
    width = max(len(c) for c in results) + 2
    cols = [max(len(s), 8) + 2 for s in servers]
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
        print("%-10s %s" % (s + ":", ", ".join("%d %s" % (counts[k], k) for k in ("pass", "fail", "deviation", "inconclusive", "skip", "error")
                                                      if k in counts)))

    return 0


if __name__ == "__main__":
    sys.exit(main())
