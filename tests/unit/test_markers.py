"""The markers are enforced: a test that opens ClickHouse or starts the broker without saying so
fails (``tests/conftest.py``), so ``-m 'not clickhouse'`` or ``-m 'not kafka'`` can be trusted."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"
INNER = """
import pytest
import clickhouse_connect
from parwatch.broker import EmbeddedBroker


def test_opens_clickhouse_unmarked(tmp_path):
    clickhouse_connect.get_client(dsn=f"chdb://{tmp_path / 'w'}")


@pytest.mark.clickhouse
def test_opens_clickhouse_marked(tmp_path):
    clickhouse_connect.get_client(dsn=f"chdb://{tmp_path / 'w'}").close()


def test_starts_a_broker_unmarked():
    EmbeddedBroker().start()
"""


def test_unmarked_components_fail_the_test(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST.read_text(encoding="utf-8"))
    pytester.makepyfile(test_inner=INNER)
    pytester.makeini("[pytest]\nmarkers =\n    kafka: k\n    clickhouse: c\n    e2e: e\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines([
        "*test_opens_clickhouse_unmarked opens ClickHouse without @pytest.mark.clickhouse*",
        "*test_starts_a_broker_unmarked starts a broker without @pytest.mark.kafka*",
    ])  # fmt: skip
