#!/usr/bin/env python3
"""Writes the generated part of docs/benchmarks.md and docs/img/benchmarks.svg
from criterion's output (target/criterion).

For every benchmark criterion saved (a `new/benchmark.json` beside a
`new/estimates.json`) it takes the median point estimate. Function ids follow
the naming convention of the bench files:

* `floor_*`   the physical floor (one cache line, raw futex, memcpy),
* `alt_*`     what a user would use otherwise (pipe, std, crossbeam, Python),
* `shmproc_*` ours.

The group name is the measurement. Within a group every function is compared
with every floor and every alternative *measured in the same run*; benchmarks
with a parameter (`BenchmarkId::new("shmproc_x", 64)`) are compared only with
entries of the same parameter.

Only the text between `<!-- generated:begin -->` and `<!-- generated:end -->`
is replaced; everything else in docs/benchmarks.md is kept as written. When
the markers are missing, they are appended at the end.

Standard library only (no matplotlib): the SVG is written by hand.

    python3 scripts/bench_report.py [--criterion DIR] [--doc FILE] [--svg FILE]
                                    [--command TEXT]
"""

import argparse
import datetime
import html
import json
import math
import os
import platform
import re
import subprocess
import sys

BEGIN = "<!-- generated:begin -->"
END = "<!-- generated:end -->"
KINDS = ("floor", "alt", "shmproc")
COLOURS = {"floor": "#7f7f7f", "alt": "#e3882f", "shmproc": "#2f6fb3", "other": "#9b59b6"}


class Bench:
    """One criterion benchmark: its ids, median (ns) and throughput."""

    def __init__(self, group, function, value, median_ns, throughput, measured=None):
        self.measured = measured  # when criterion wrote the estimate (epoch seconds)
        self.group = group
        self.function = function or ""
        self.value = value
        self.median_ns = median_ns
        self.throughput = throughput  # None or (kind, amount per iteration)

    @property
    def kind(self):
        for kind in KINDS:
            if self.function.startswith(kind + "_"):
                return kind
        return "other"

    @property
    def name(self):
        """The function id with the parameter, as criterion shows it."""
        if self.value is None:
            return self.function
        return "%s/%s" % (self.function, self.value) if self.function else self.value

    def __repr__(self):
        return "Bench(%s/%s, %.3g ns)" % (self.group, self.name, self.median_ns)


def load(criterion_dir):
    """Every benchmark under `criterion_dir`, sorted by group then name.

    Directories without both `new/benchmark.json` and `new/estimates.json`
    (criterion's own report folders, half-written runs) are skipped.
    """
    benches = []
    for root, _dirs, files in os.walk(criterion_dir):
        if os.path.basename(root) != "new" or "benchmark.json" not in files:
            continue
        if "estimates.json" not in files:
            continue
        with open(os.path.join(root, "benchmark.json")) as f:
            meta = json.load(f)
        with open(os.path.join(root, "estimates.json")) as f:
            estimates = json.load(f)
        median = estimates["median"]["point_estimate"]
        throughput = None
        if meta.get("throughput"):
            ((kind, amount),) = meta["throughput"].items()
            throughput = (kind, amount)
        measured = os.path.getmtime(os.path.join(root, "estimates.json"))
        benches.append(
            Bench(meta["group_id"], meta.get("function_id"), meta.get("value_str"),
                  float(median), throughput, measured))
    benches.sort(key=sort_key)
    return benches


def natural(text):
    """A key that orders "64" < "4096" < "1048576" (numbers by value)."""
    if text is None:
        return ()
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part)
                 for part in re.split(r"(\d+)", text) if part)


def sort_key(b):
    """Group, then parameter (numerically), then floor, alt, ours, then name."""
    kind = KINDS.index(b.kind) if b.kind in KINDS else len(KINDS)
    return (b.group, natural(b.value), kind, b.function)


def groups(benches):
    """{group name: [Bench]} in sorted order."""
    out = {}
    for b in benches:
        out.setdefault(b.group, []).append(b)
    return out


def references(members, kind):
    """The entries of `kind` ('floor' or 'alt') a group's benches are compared with.

    Returned as a list of function ids (without the parameter), in order.
    """
    seen = []
    for b in members:
        if b.kind == kind and b.function not in seen:
            seen.append(b.function)
    return seen


def find(members, function, value):
    """The bench `function` with parameter `value` in a group (or None)."""
    for b in members:
        if b.function == function and b.value == value:
            return b
    return None


def ratio(bench, members, function):
    """bench's median over that of `function` at the same parameter, or None."""
    ref = find(members, function, bench.value)
    if ref is None or ref.median_ns <= 0:
        return None
    return bench.median_ns / ref.median_ns


def chart_reference(members, bench):
    """The entry a bench's bar is measured against: the fastest floor at its
    parameter; without a floor, the fastest alternative. None when neither."""
    for kind in ("floor", "alt"):
        refs = [b for b in members if b.kind == kind and b.value == bench.value]
        if refs:
            return min(refs, key=lambda b: b.median_ns)
    return None


def format_time(ns):
    if ns < 1e3:
        return "%.3g ns" % ns
    if ns < 1e6:
        return "%.3g µs" % (ns / 1e3)
    if ns < 1e9:
        return "%.3g ms" % (ns / 1e6)
    return "%.3g s" % (ns / 1e9)


def format_throughput(bench):
    if bench.throughput is None or bench.median_ns <= 0:
        return ""
    kind, amount = bench.throughput
    per_second = amount / (bench.median_ns * 1e-9)
    if kind == "Bytes":
        units = [("GiB/s", 1 << 30), ("MiB/s", 1 << 20), ("KiB/s", 1 << 10), ("B/s", 1)]
    elif kind == "BytesDecimal":
        units = [("GB/s", 1e9), ("MB/s", 1e6), ("kB/s", 1e3), ("B/s", 1)]
    else:
        units = [("Gelem/s", 1e9), ("Melem/s", 1e6), ("Kelem/s", 1e3), ("elem/s", 1)]
    for unit, scale in units:
        if per_second >= scale:
            return "%.3g %s" % (per_second / scale, unit)
    return "%.3g %s" % (per_second, units[-1][0])


def format_ratio(r):
    if r is None:
        return "—"
    if r < 0.1:
        return "%.2g×" % r
    return "%.2f×" % r if r < 100 else "%.0f×" % r


def tables(benches):
    """The Markdown tables, one per group."""
    out = []
    for group, members in groups(benches).items():
        floors = references(members, "floor")
        alts = references(members, "alt")
        has_throughput = any(b.throughput for b in members)
        header = ["function", "kind", "median"]
        header += ["vs `%s`" % f for f in floors]
        header += ["vs `%s`" % a for a in alts]
        if has_throughput:
            header.append("throughput")
        out.append("### `%s`\n" % group)
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
        for b in members:
            row = ["`%s`" % b.name, b.kind, format_time(b.median_ns)]
            row += [format_ratio(ratio(b, members, f)) for f in floors]
            row += [format_ratio(ratio(b, members, a)) for a in alts]
            if has_throughput:
                row.append(format_throughput(b))
            out.append("| " + " | ".join(row) + " |")
        out.append("")
    return "\n".join(out)


def run(command):
    try:
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""


def utc(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC")


def machine(benches=()):
    """{field: value} describing where and when the figures were taken."""
    lscpu = run(["lscpu"])
    model = ""
    for line in lscpu.splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
            break
    if not model and os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    rustc = run(["rustc", "--version"]).strip()
    load = ""
    if hasattr(os, "getloadavg"):
        load = "%.2f %.2f %.2f" % os.getloadavg()
    measured = [b.measured for b in benches if b.measured is not None]
    return {
        "measured": ("%s to %s" % (utc(min(measured)), utc(max(measured)))
                     if measured else "unknown"),
        "CPU": model or "unknown",
        "cores (online)": str(os.cpu_count() or "unknown"),
        "kernel": "%s %s" % (platform.system(), platform.release()),
        "rustc": rustc or "unknown",
        "load average when the report was written": load or "unknown",
        "date (report written)": utc(datetime.datetime.now(datetime.timezone.utc).timestamp()),
    }


def generated_section(benches, command, machine_info, svg_rel):
    lines = [
        BEGIN,
        "<!-- Written by scripts/bench_report.py; edit outside these markers. -->",
        "",
        "## Figures (generated)",
        "",
        "Command: `%s`" % command,
        "",
        "| machine | |",
        "|---|---|",
    ]
    for key, value in machine_info.items():
        lines.append("| %s | %s |" % (key, value))
    lines += [
        "",
        "Medians of criterion's samples. `floor_*` is the physical floor, "
        "`alt_*` what one would use instead, `shmproc_*` ours; each ratio "
        "divides a row's median by the column's entry, measured in the same run "
        "(at the same parameter). Below 1× is faster than the reference.",
        "",
        "![ratio to the floor, per group](%s)" % svg_rel,
        "",
    ]
    if benches:
        lines.append(tables(benches))
    else:
        lines.append("No criterion output found (run `scripts/bench_all.sh`).\n")
    lines.append(END)
    return "\n".join(lines)


def splice(document, section):
    """`document` with the text between the markers replaced by `section`
    (which includes the markers); appended when the markers are missing."""
    begin = document.find(BEGIN)
    end = document.find(END)
    if begin == -1 or end == -1 or end < begin:
        if document and not document.endswith("\n"):
            document += "\n"
        return document + "\n" + section + "\n"
    return document[:begin] + section + document[end + len(END):]


def svg(benches):
    """A horizontal bar chart of each bench's ratio to its group's fastest
    floor (log scale, 1× in the middle of the bars' span)."""
    rows = []  # (label, kind, ratio, is_group_header)
    for group, members in groups(benches).items():
        body = []
        for b in members:
            ref = chart_reference(members, b)
            if ref is None or ref is b or ref.median_ns <= 0 or b.median_ns <= 0:
                continue
            body.append((b.name, b.kind, b.median_ns / ref.median_ns, ref.name))
        if body:
            refs = sorted({r for *_rest, r in body})
            rows.append(("%s  (vs %s)" % (group, ", ".join(refs)), None, None, True))
            rows += [(name, kind, r, False) for name, kind, r, _ref in body]

    ratios = [r for _l, _k, r, header in rows if not header]
    low = min(ratios + [1.0])
    high = max(ratios + [1.0])
    lo_exp = math.floor(math.log10(low) - 1e-9) if low < 1 else 0
    hi_exp = math.ceil(math.log10(high) + 1e-9) if high > 1 else 1
    if hi_exp <= lo_exp:
        hi_exp = lo_exp + 1

    label_w, plot_w, right_w = 330, 480, 80
    row_h, top, bottom = 18, 40, 30
    width = label_w + plot_w + right_w
    height = top + row_h * max(len(rows), 1) + bottom

    def x(r):
        span = hi_exp - lo_exp
        return label_w + plot_w * (math.log10(r) - lo_exp) / span

    out = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
        'viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">' % (width, height, width, height),
        '<rect width="100%" height="100%" fill="white"/>',
        '<text x="%d" y="20" font-size="14" font-weight="bold">Median time relative to the '
        'group\'s floor (log scale; shorter is closer to the floor)</text>' % 10,
    ]
    for e in range(lo_exp, hi_exp + 1):
        tx = x(10.0 ** e)
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#dddddd"/>'
                   % (tx, top - 5, tx, height - bottom))
        label = ("%g×" % (10.0 ** e)) if e >= 0 else ("1/%g" % (10.0 ** -e))
        out.append('<text class="tick" x="%.1f" y="%d" text-anchor="middle">%s</text>'
                   % (tx, height - bottom + 15, label))
    one = x(1.0)
    out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black"/>'
               % (one, top - 5, one, height - bottom))
    for i, (label, kind, r, header) in enumerate(rows):
        y = top + i * row_h
        if header:
            out.append('<text x="5" y="%d" font-weight="bold">%s</text>'
                       % (y + 13, html.escape(label)))
            continue
        out.append('<text x="%d" y="%d" text-anchor="end">%s</text>'
                   % (label_w - 6, y + 13, html.escape(label)))
        bx = x(r)
        left, w = min(one, bx), abs(bx - one)
        out.append('<rect class="bar" data-kind="%s" data-ratio="%.6g" x="%.1f" y="%d" '
                   'width="%.1f" height="%d" fill="%s"/>'
                   % (kind, r, left, y + 3, max(w, 1.0), row_h - 6, COLOURS[kind]))
        out.append('<text x="%.1f" y="%d">%s</text>' % (max(one, bx) + 4, y + 13, format_ratio(r)))
    legend_x = 10
    for kind in ("floor", "alt", "shmproc"):
        out.append('<rect x="%d" y="%d" width="10" height="10" fill="%s"/>'
                   % (legend_x, height - 12, COLOURS[kind]))
        out.append('<text x="%d" y="%d">%s</text>' % (legend_x + 14, height - 3, kind))
        legend_x += 80
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(here)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--criterion", default=os.path.join(repo, "target", "criterion"))
    parser.add_argument("--doc", default=os.path.join(repo, "docs", "benchmarks.md"))
    parser.add_argument("--svg", default=os.path.join(repo, "docs", "img", "benchmarks.svg"))
    parser.add_argument("--command", default="scripts/bench_all.sh")
    args = parser.parse_args(argv)

    benches = load(args.criterion) if os.path.isdir(args.criterion) else []
    if not benches:
        print("bench_report: no criterion output under %s" % args.criterion, file=sys.stderr)
    os.makedirs(os.path.dirname(os.path.abspath(args.svg)), exist_ok=True)
    with open(args.svg, "w") as f:
        f.write(svg(benches))
    svg_rel = os.path.relpath(args.svg, os.path.dirname(os.path.abspath(args.doc)))
    section = generated_section(benches, args.command, machine(benches), svg_rel)
    document = ""
    if os.path.exists(args.doc):
        with open(args.doc) as f:
            document = f.read()
    with open(args.doc, "w") as f:
        f.write(splice(document, section))
    print("bench_report: %d benchmarks in %d groups -> %s, %s"
          % (len(benches), len(groups(benches)), args.doc, args.svg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
