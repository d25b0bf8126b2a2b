"""``adam-conformance``: generate and check the vectors, build the conformance matrix, write reproductions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _report_check(problems: list[str], folder: Path) -> int:
    """Add what the loader finds wrong in ``folder``, print every problem, and return check's exit status."""
    from conformance.load.files import load_paths

    _, errors = load_paths(sorted(folder.glob("*.yaml")))
    problems = problems + [str(e) for e in errors]
    for line in problems:
        print(line, file=sys.stderr)
    print(f"adam-conformance check: {'FAILED, ' + str(len(problems)) + ' problem(s)' if problems else 'vectors are up to date'}")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = argparse.ArgumentParser(prog="adam-conformance", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="regenerate vectors/*.yaml from the scenarios through the oracle")
    gen.add_argument("--out", type=Path, default=None, help="folder to write to (default: the bundled vectors folder)")
    gen.add_argument("--scenarios", type=Path, nargs="+", metavar="FILE",
                     help="your scenario files (vectors/scenario.schema.json) instead of the bundled set; needs --out")
    chk = sub.add_parser("check", help="fail when the committed vectors differ from what the oracle produces")
    chk.add_argument("--dir", "--vectors", type=Path, default=None, help="folder to check (default: the bundled vectors folder)")
    chk.add_argument("--scenarios", type=Path, nargs="+", metavar="FILE",
                     help="check the vector files made from these scenario files (in --vectors) instead of the bundled set")
    mut = sub.add_parser("mutants", help="run every known variant through the suite and write the kill matrix")
    mut.add_argument("--json", type=Path, required=True, help="where to write the kill matrix")
    mut.add_argument("--jobs", type=int, default=2)
    mat = sub.add_parser("matrix", help="markdown tables from --conformance-json result files or their summaries (docs/results/*.summary.json)")
    mat.add_argument("results", nargs="+", type=Path)
    mat.add_argument("--tightness", action="store_true", help="print the largest share of the bound used, per dtype")
    mat.add_argument("--diagnoses", action="store_true", help="print which known variants the failing items match")
    page = sub.add_parser("html", help="render a --conformance-json file as the self-contained HTML report")
    page.add_argument("results", type=Path)
    page.add_argument("-o", "--output", type=Path, required=True)
    rep = sub.add_parser("repro", help="write a self-contained script (NumPy and the candidate's library only) that "
                                       "reproduces one failing item, to file upstream")
    rep.add_argument("--candidate", metavar="MODULE:ATTR", help="as for pytest --candidate")
    rep.add_argument("--vector", metavar="ID", help="the vector's id, e.g. kernels/strided")
    rep.add_argument("--dtype", help="float16, bfloat16, float32, float64, or mixed")
    rep.add_argument("--from", dest="source", nargs=2, metavar=("RESULTS_JSON", "ITEM"),
                     help="take candidate, adapter, execution, raw, profile and Keras backend from a --conformance-json "
                          "file (or its summary), for the item ITEM: its node id or vector[dtype]")
    rep.add_argument("--adapter", default=None, help="override the adapter chosen from the module name")
    rep.add_argument("--execution", default=None, help="how the candidate's step runs (default: eager)")
    rep.add_argument("--raw", action="store_true", help="native behaviour, as pytest --raw")
    rep.add_argument("--profile", default=None, metavar="DEVIATION[,...]|none",
                     help="the known deviations the expected values include besides the adapter's (default: the "
                          "expectations file's, as the suite; none: the spec as it is)")
    rep.add_argument("--vectors", type=Path, nargs="+", default=None, metavar="PATH", help="your own vector files")
    rep.add_argument("--force", action="store_true", help="write the script for a passing item too")
    rep.add_argument("-o", "--output", type=Path, default=Path("repro.py"), help="the script (default: repro.py)")
    args = parser.parse_args(argv)
    if args.command == "repro":
        from conformance import repro

        return repro.run(args)

    from vectors import generate

    if args.command in ("generate", "check") and args.scenarios:
        from vectors import user_scenarios

        folder = args.out if args.command == "generate" else args.dir
        if folder is None:
            parser.error(f"{args.command} --scenarios needs {'--out' if args.command == 'generate' else '--vectors'} DIR")
        try:
            if args.command == "generate":
                for path in user_scenarios.write(args.scenarios, folder):
                    print(f"wrote {path}")
                return 0
            problems = user_scenarios.check(args.scenarios, folder)
        except user_scenarios.ScenarioError as exc:
            print(f"adam-conformance {args.command}: {exc}", file=sys.stderr)
            return 2
        return _report_check(problems, Path(folder))
    if args.command == "generate":
        for path in generate.generate(args.out or generate.VECTOR_DIR):
            print(f"wrote {path}")
        return 0
    if args.command == "check":
        folder = args.dir or generate.VECTOR_DIR
        return _report_check(generate.check(folder), Path(folder))
    if args.command == "mutants":
        import json

        from conformance.diagnosis.kill_matrix import kill_matrix

        result = kill_matrix(args.jobs)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"{len(result['mutants'])} wrong variants, survivors: {result['survivors'] or 'none'}; "
              f"{len(result['correct'])} correct variants, failing: {result['correct_failing'] or 'none'}; "
              f"vectors that kill nothing: {len(result['vectors_killing_nothing'])}")
        return 1 if result["survivors"] or result["correct_failing"] else 0
    if args.command == "html":
        import json

        from conformance.report import html

        html.write(args.output, json.loads(args.results.read_text(encoding="utf-8")))
        print(f"wrote {args.output}")
        return 0
    from conformance.report.tables import diagnoses, matrix, tightness

    missing = [p for p in args.results if not p.is_file()]
    if missing:
        print(f"adam-conformance matrix: no such file: {missing[0]}", file=sys.stderr)
        return 2
    table = tightness if args.tightness else diagnoses if args.diagnoses else matrix
    sys.stdout.write(table(args.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
