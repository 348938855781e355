"""Fail if any module in reactor/ imports something outside the standard library.

Vendoring users copy reactor/ into systems with no third-party packages, so
this is a release blocker, checked on every CI run. Usage:
``python .ci/check_stdlib.py [PACKAGE_DIR]``; exit 1 lists the offenders.
"""

import ast
import pathlib
import sys


def stdlib_names():
    names = getattr(sys, "stdlib_module_names", None)     # Python 3.10+
    if names is None:
        sys.exit("check_stdlib: needs Python 3.10+ for sys.stdlib_module_names")
    return set(names)


def offenders(package):
    stdlib = stdlib_names()
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in stdlib and top != package.name:
                    yield "%s:%d: imports %s" % (path, node.lineno, module)


def main():
    package = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "reactor")
    bad = list(offenders(package))
    for line in bad:
        print(line)
    print("check_stdlib: %d non-stdlib import(s) in %s/" % (len(bad), package))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
