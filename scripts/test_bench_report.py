#!/usr/bin/env python3
"""Tests for scripts/bench_report.py on a fake criterion tree.

    python3 scripts/test_bench_report.py
"""

import contextlib
import io
import json
import math
import os
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_report  # noqa: E402

SVG_NS = "{http://www.w3.org/2000/svg}"


def write_bench(root, group, function, median_ns, value=None, throughput=None, old=None):
    """One benchmark as criterion 0.5 saves it (plus an optional stale `base`)."""
    parts = [group, function] + ([value] if value is not None else [])
    directory = os.path.join(root, *parts)
    full_id = "/".join(parts)
    for sub, median in (("new", median_ns), ("base", old)):
        if median is None:
            continue
        os.makedirs(os.path.join(directory, sub), exist_ok=True)
        meta = {
            "group_id": group,
            "function_id": function,
            "value_str": value,
            "throughput": throughput,
            "full_id": full_id,
            "directory_name": full_id,
            "title": full_id,
        }
        estimate = {"confidence_interval": {"confidence_level": 0.95,
                                            "lower_bound": median * 0.9,
                                            "upper_bound": median * 1.1},
                    "point_estimate": median, "standard_error": 1.0}
        estimates = {"mean": dict(estimate, point_estimate=median * 1.5),
                     "median": estimate,
                     "median_abs_dev": estimate, "slope": None, "std_dev": estimate}
        with open(os.path.join(directory, sub, "benchmark.json"), "w") as f:
            json.dump(meta, f)
        with open(os.path.join(directory, sub, "estimates.json"), "w") as f:
            json.dump(estimates, f)


class Fixture(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = os.path.join(self.tmp.name, "criterion")
        # Group 1: one floor, one alternative, ours; a stale `base` run that
        # must be ignored.
        write_bench(self.root, "roundtrip_8B", "floor_spin_cache_line", 200.0, old=999.0)
        write_bench(self.root, "roundtrip_8B", "alt_pipe", 8000.0)
        write_bench(self.root, "roundtrip_8B", "shmproc_pipe", 400.0)
        # Group 2: a throughput group.
        write_bench(self.root, "bulk_64MiB", "floor_memcpy", 2.0e7,
                    throughput={"Bytes": 64 << 20})
        write_bench(self.root, "bulk_64MiB", "shmproc_array_write_slice", 3.0e7,
                    throughput={"Bytes": 64 << 20})
        # Group 3: parameterised: ratios only at the same parameter.
        for size, ours, floor in (("64", 30.0, 10.0), ("4096", 90.0, 45.0)):
            write_bench(self.root, "alloc_free", "floor_global", floor, value=size)
            write_bench(self.root, "alloc_free", "shmproc_arena", ours, value=size)
        # Criterion's own report folder, not a benchmark.
        os.makedirs(os.path.join(self.root, "report"), exist_ok=True)
        with open(os.path.join(self.root, "report", "index.html"), "w") as f:
            f.write("<html></html>")
        self.doc = os.path.join(self.tmp.name, "docs", "benchmarks.md")
        self.svg = os.path.join(self.tmp.name, "docs", "img", "benchmarks.svg")
        os.makedirs(os.path.dirname(self.doc))
        with open(self.doc, "w") as f:
            f.write("# Benchmarks\n\nHand-written intro.\n\n"
                    + bench_report.BEGIN + "\nstale generated text\n" + bench_report.END
                    + "\n\n## Notes\n\nHand-written notes.\n")

    def tearDown(self):
        self.tmp.cleanup()

    def report(self):
        with contextlib.redirect_stdout(io.StringIO()):
            code = bench_report.main(["--criterion", self.root, "--doc", self.doc,
                                      "--svg", self.svg, "--command", "scripts/bench_all.sh"])
        self.assertEqual(code, 0)
        with open(self.doc) as f:
            doc = f.read()
        with open(self.svg) as f:
            svg = f.read()
        return doc, svg

    @staticmethod
    def row(doc, name):
        """The cells of the table row whose first cell is `name`."""
        for line in doc.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells and cells[0] == "`%s`" % name:
                return cells
        raise AssertionError("no row for %s in:\n%s" % (name, doc))


class TestLoad(Fixture):
    def test_reads_new_medians_only(self):
        benches = bench_report.load(self.root)
        by_name = {(b.group, b.name): b for b in benches}
        self.assertEqual(len(benches), 9)
        self.assertEqual(by_name[("roundtrip_8B", "floor_spin_cache_line")].median_ns, 200.0)
        self.assertEqual(by_name[("alloc_free", "shmproc_arena/64")].median_ns, 30.0)
        self.assertEqual(by_name[("bulk_64MiB", "floor_memcpy")].throughput, ("Bytes", 64 << 20))

    def test_kinds(self):
        kinds = {b.name: b.kind for b in bench_report.load(self.root)}
        self.assertEqual(kinds["floor_memcpy"], "floor")
        self.assertEqual(kinds["alt_pipe"], "alt")
        self.assertEqual(kinds["shmproc_pipe"], "shmproc")


class TestTables(Fixture):
    def test_ratios_to_floor_and_alt(self):
        doc, _ = self.report()
        self.assertIn("| function | kind | median | vs `floor_spin_cache_line` | vs `alt_pipe` |",
                      doc)
        ours = self.row(doc, "shmproc_pipe")
        self.assertEqual(ours[1:], ["shmproc", "400 ns", "2.00×", "0.05×"])
        floor = self.row(doc, "floor_spin_cache_line")
        self.assertEqual(floor[2:], ["200 ns", "1.00×", "0.025×"])
        alt = self.row(doc, "alt_pipe")
        self.assertEqual(alt[2:], ["8 µs", "40.00×", "1.00×"])

    def test_parameterised_groups_compare_like_with_like(self):
        doc, _ = self.report()
        self.assertEqual(self.row(doc, "shmproc_arena/64")[3], "3.00×")
        self.assertEqual(self.row(doc, "shmproc_arena/4096")[3], "2.00×")

    def test_throughput(self):
        doc, _ = self.report()
        # 64 MiB in 20 ms = 3.125 GiB/s; in 30 ms = 2.08 GiB/s.
        self.assertEqual(self.row(doc, "floor_memcpy")[-1], "3.12 GiB/s")
        self.assertEqual(self.row(doc, "shmproc_array_write_slice")[-1], "2.08 GiB/s")
        self.assertEqual(self.row(doc, "shmproc_array_write_slice")[2], "30 ms")

    def test_machine_and_command(self):
        doc, _ = self.report()
        self.assertIn("Command: `scripts/bench_all.sh`", doc)
        for field in ("| CPU |", "| kernel |", "| rustc |", "| date (report written) |",
                      "| cores (online) |", "| measured |"):
            self.assertIn(field, doc)

    def test_rows_ordered_by_parameter_then_kind(self):
        doc, _ = self.report()
        order = [line.split("|")[1].strip() for line in doc.splitlines()
                 if "arena/" in line or "floor_global/" in line]
        self.assertEqual(order, ["`floor_global/64`", "`shmproc_arena/64`",
                                 "`floor_global/4096`", "`shmproc_arena/4096`"])

    def test_small_ratios_keep_their_digits(self):
        self.assertEqual(bench_report.format_ratio(0.0012), "0.0012×")
        self.assertEqual(bench_report.format_ratio(0.5), "0.50×")
        self.assertEqual(bench_report.format_ratio(1234.0), "1234×")

    def test_hand_written_text_survives_reruns(self):
        first, _ = self.report()
        second, _ = self.report()
        for text in ("Hand-written intro.", "## Notes\n\nHand-written notes."):
            self.assertEqual(second.count(text), 1)
        self.assertNotIn("stale generated text", second)
        self.assertEqual(second.count(bench_report.BEGIN), 1)
        self.assertEqual(second.count(bench_report.END), 1)
        # Intro before, notes after the generated part.
        self.assertLess(second.index("Hand-written intro."), second.index(bench_report.BEGIN))
        self.assertGreater(second.index("Hand-written notes."), second.index(bench_report.END))
        # Apart from the date line, a rerun on the same data is identical.
        strip = lambda d: [l for l in d.splitlines()
                           if not l.startswith(("| date", "| load", "| measured"))]
        self.assertEqual(strip(first), strip(second))

    def test_markers_appended_when_missing(self):
        with open(self.doc, "w") as f:
            f.write("# Benchmarks\n\nOnly prose.\n")
        doc, _ = self.report()
        self.assertTrue(doc.startswith("# Benchmarks\n\nOnly prose.\n"))
        self.assertIn(bench_report.BEGIN, doc)
        self.assertIn("`shmproc_pipe`", doc)


class TestSvg(Fixture):
    def bars(self, svg):
        root = ET.fromstring(svg)
        self.assertEqual(root.tag, SVG_NS + "svg")
        return [r for r in root.iter(SVG_NS + "rect") if r.get("class") == "bar"]

    def test_one_bar_per_non_reference_bench(self):
        _, svg = self.report()
        bars = self.bars(svg)
        # Every bench except the three floors at their own parameter: 9 - 4 = 5.
        ratios = sorted(round(float(b.get("data-ratio")), 3) for b in bars)
        self.assertEqual(ratios, [1.5, 2.0, 2.0, 3.0, 40.0])

    def test_bars_are_log_scaled(self):
        _, svg = self.report()
        widths = {round(float(b.get("data-ratio")), 3): float(b.get("width"))
                  for b in self.bars(svg)}
        # On a log axis 40x is log(40)/log(2) times as long as 2x.
        self.assertAlmostEqual(widths[40.0] / widths[2.0], math.log(40) / math.log(2), places=2)
        self.assertAlmostEqual(widths[3.0] / widths[1.5], math.log(3) / math.log(1.5), places=2)

    def test_below_one_goes_left_of_the_one_line(self):
        write_bench(self.root, "roundtrip_8B", "shmproc_fast", 100.0)
        _, svg = self.report()
        bars = {round(float(b.get("data-ratio")), 3): b for b in self.bars(svg)}
        slow, fast = bars[2.0], bars[0.5]
        self.assertAlmostEqual(float(fast.get("x")) + float(fast.get("width")),
                               float(slow.get("x")), places=1)
        self.assertAlmostEqual(float(fast.get("width")), float(slow.get("width")), places=1)

    def test_group_labels_and_colours(self):
        _, svg = self.report()
        self.assertIn("roundtrip_8B  (vs floor_spin_cache_line)", svg)
        kinds = {b.get("data-kind"): b.get("fill") for b in self.bars(svg)}
        self.assertEqual(kinds["shmproc"], bench_report.COLOURS["shmproc"])
        self.assertEqual(kinds["alt"], bench_report.COLOURS["alt"])

    def test_empty_tree_still_writes_valid_files(self):
        empty = os.path.join(self.tmp.name, "nothing")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            bench_report.main(["--criterion", empty, "--doc", self.doc, "--svg", self.svg])
        with open(self.svg) as f:
            self.assertEqual(self.bars(f.read()), [])
        with open(self.doc) as f:
            self.assertIn("No criterion output found", f.read())


if __name__ == "__main__":
    unittest.main()
