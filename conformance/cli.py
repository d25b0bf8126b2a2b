"""``adam-conformance``: generate and check the vectors, and build the conformance matrix."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = argparse.ArgumentParser(prog="adam-conformance", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="regenerate vectors/*.yaml from the scenarios through the oracle")
    gen.add_argument("--out", type=Path, default=None, help="folder to write to (default: the bundled vectors folder)")
    chk = sub.add_parser("check", help="fail when the committed vectors differ from what the oracle produces")
    chk.add_argument("--dir", type=Path, default=None, help="folder to check (default: the bundled vectors folder)")
    mat = sub.add_parser("matrix", help="markdown table from --conformance-json result files")
    mat.add_argument("results", nargs="+", type=Path)
    args = parser.parse_args(argv)

    from vectors import generate

    if args.command == "generate":
        for path in generate.generate(args.out or generate.VECTOR_DIR):
            print(f"wrote {path}")
        return 0
    if args.command == "check":
        problems = generate.check(args.dir or generate.VECTOR_DIR)
        from conformance.loader import load_paths

        folder = args.dir or generate.VECTOR_DIR
        _, errors = load_paths(sorted(Path(folder).glob("*.yaml")))
        problems += [str(e) for e in errors]
        for line in problems:
            print(line, file=sys.stderr)
        print(f"adam-conformance check: {'FAILED, ' + str(len(problems)) + ' problem(s)' if problems else 'vectors are up to date'}")
        return 1 if problems else 0
    from conformance.report import matrix

    missing = [p for p in args.results if not p.is_file()]
    if missing:
        print(f"adam-conformance matrix: no such file: {missing[0]}", file=sys.stderr)
        return 2
    sys.stdout.write(matrix(args.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
