"""One root error per package: every exception class a package defines derives from its root."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from dashboards.errors import DashboardsError
from parwatch.errors import ParwatchError
from producers.errors import ProducerError
from schemas.errors import PipelineError
from streams.errors import StreamsError

ROOTS = {
    "schemas": PipelineError,
    "producers": ProducerError,
    "streams": StreamsError,
    "dashboards": DashboardsError,
    "parwatch": ParwatchError,
}


def _modules(package: str) -> list[str]:
    pkg = importlib.import_module(package)
    return [package] + [
        m.name for m in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}.")
        if not m.name.endswith("__main__")
    ]  # fmt: skip


@pytest.mark.parametrize("package", sorted(ROOTS))
def test_every_exception_class_derives_from_the_package_root(package: str) -> None:
    root, defined = ROOTS[package], []
    for name in _modules(package):
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == name and issubclass(cls, BaseException):
                defined.append(cls)
    assert defined, f"{package} defines no exception class: the check would be empty"
    strays = [f"{c.__module__}.{c.__qualname__}" for c in defined if not issubclass(c, root)]
    assert strays == [], f"not under {root.__name__}"
