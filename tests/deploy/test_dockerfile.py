"""deploy/Dockerfile: pinned base, non-root user, and the package built from what it copies."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.deploy.conftest import DEPLOY, ROOT


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def test_base_image_is_pinned_python_311_slim() -> None:
    froms = [a for i, a in instructions() if i == "FROM"]
    assert len(froms) == 1
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", froms[0])


def test_runs_as_a_numeric_non_root_user_with_parwatch_as_entrypoint() -> None:
    ins = instructions()
    users = [a for i, a in ins if i == "USER"]
    assert users and users[-1] == "10001:10001"
    run = " ".join(a for i, a in ins if i == "RUN")
    assert "--uid 10001" in run
    assert [a for i, a in ins if i == "ENTRYPOINT"] == ['["parwatch"]']
    # the user comes after the install, so pip runs as root and the app does not
    assert ins.index(("USER", "10001:10001")) > max(
        n for n, (i, a) in enumerate(ins) if i == "RUN" and "pip install" in a
    )


def copied_sources() -> list[str]:
    sources = []
    for i, a in instructions():
        if i == "COPY":
            sources.extend(a.split()[:-1])
    return sources


def test_copies_every_package_and_dockerignore_keeps_them() -> None:
    sources = copied_sources()
    for package in ("schemas", "producers", "streams", "dashboards", "parwatch"):
        assert package in sources
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert ignore[ignore.index("*") :].count("*") == 1
    kept = {ln[1:].rstrip("/") for ln in ignore if ln.startswith("!")}
    assert set(sources) <= kept


@pytest.mark.timeout(300)
def test_the_copied_files_build_the_package(tmp_path: Path) -> None:
    """What `pip install .` does in the image, on the same files: a wheel with every part."""
    context = tmp_path / "context"
    for source in copied_sources():
        src = ROOT / source
        if src.is_dir():
            shutil.copytree(src, context / source,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
        else:
            context.mkdir(exist_ok=True)
            shutil.copy2(src, context / source)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path / "wheel"), str(context)],
        check=True, timeout=240,
    )  # fmt: skip
    (wheel,) = (tmp_path / "wheel").glob("parwatch-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("parwatch/cli.py", "streams/warehouse/cluster.py",
                     "schemas/clickhouse/0001_events.sql",
                     "schemas/reference/agencies.csv"):  # fmt: skip
        assert required in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "parwatch = parwatch.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
