"""Fails on a function-level import of the project's own modules that does not say why.

The package imports its own modules at module top, so that import-linter sees every
dependency and a new cycle cannot hide inside a function. A function-level import is
allowed only to defer something heavy or backend-specific (Keras before ``--backend`` is
chosen, TensorFlow, torch, JAX, Ray, ...); such an import must carry a comment containing
"deferred" on its line or on the line just above it.

Usage: python tools/check_deferred_imports.py [PATHS...]   (default: keras_dmcodec training)
"""

import ast
import sys
from pathlib import Path

OWN = ("keras_dmcodec", "training")


def _own(node):
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or (node.module or "").split(".")[0] in OWN
    return any(alias.name.split(".")[0] in OWN for alias in node.names)


def _function_imports(tree):
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(func):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    yield node


def check(path):
    source = Path(path).read_text()
    lines = source.splitlines()
    problems = []
    seen = set()
    for node in _function_imports(ast.parse(source, filename=str(path))):
        if node.lineno in seen or not _own(node):
            continue
        seen.add(node.lineno)
        here = lines[node.lineno - 1]
        above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
        if "deferred" not in here and not (above.startswith("#") and "deferred" in above):
            problems.append(f"{path}:{node.lineno}: function-level import of the project's own "
                            "code without a '# deferred: why' comment: import it at module top")
    return problems


def main(argv):
    roots = [Path(p) for p in (argv or OWN)]
    files = sorted(f for root in roots
                   for f in ([root] if root.is_file() else root.rglob("*.py")))
    problems = [p for f in files if not f.name.endswith("_test.py") for p in check(f)]
    for problem in problems:
        print(problem)
    print(f"deferred imports: {len(files)} files checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
