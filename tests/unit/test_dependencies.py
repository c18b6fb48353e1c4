"""Every third-party module that the shipped packages import is declared in ``pyproject.toml``
(``[project] dependencies``) by the distribution that provides it: a module that is only there
because another dependency pulls it in breaks when that dependency changes its own."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("schemas", "producers", "streams", "dashboards", "parwatch")


def _name(requirement: str) -> str:
    found = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert found is not None, requirement
    return re.sub(r"[-_.]+", "-", found.group(0)).lower()


def _imported_modules() -> dict[str, set[str]]:
    """Top-level module -> the files that import it (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for package in SHIPPED:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for n in names:
                    found.setdefault(n.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_distribution_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_name(r) for r in project["dependencies"]}
    providers = packages_distributions()
    undeclared = {}
    for module, files in _imported_modules().items():
        if module in sys.stdlib_module_names or module in SHIPPED or module == "__future__":
            continue
        assert module in providers, f"{module} (imported by {sorted(files)}) is not installed"
        if not declared & {_name(d) for d in providers[module]}:
            undeclared[module] = sorted(files)
    assert undeclared == {}
