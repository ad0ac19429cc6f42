"""Lines of hand-written functions per provider module (issue 9's measure of the vocabulary).

Counts the lines of every function and method defined in `src/unicrm/providers/<name>.py`
(module-level functions and methods of classes in the module, nested ones once), next to the
module's total lines. Usage: `python bench/declaration_size.py [--ref GIT_REF]`.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROVIDERS = ROOT / "src" / "unicrm" / "providers"


def function_lines(source: str) -> tuple[int, int]:
    """(lines inside functions, functions) of a module's source."""
    tree = ast.parse(source)
    total = count = 0
    for node in tree.body:
        bodies = [node] if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) else []
        if isinstance(node, ast.ClassDef):
            bodies = [n for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        for fn in bodies:
            assert fn.end_lineno is not None
            total += fn.end_lineno - fn.lineno + 1
            count += 1
    return total, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ref", help="measure the modules as of this git ref instead of the work tree")
    args = parser.parse_args()
    names = sorted(p.stem for p in PROVIDERS.glob("*.py") if p.stem not in ("__init__", "declaration"))
    print(f"{'provider':<12} {'module lines':>12} {'function lines':>15} {'functions':>10}")
    for name in names:
        if args.ref:
            try:
                source = subprocess.run(
                    ["git", "show", f"{args.ref}:src/unicrm/providers/{name}.py"],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            except subprocess.CalledProcessError:
                continue
        else:
            source = (PROVIDERS / f"{name}.py").read_text()
        lines, count = function_lines(source)
        print(f"{name:<12} {len(source.splitlines()):>12} {lines:>15} {count:>10}")


if __name__ == "__main__":
    main()
