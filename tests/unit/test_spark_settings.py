"""Extra Spark settings from the environment ($CRM_METRICS_SPARK_CONF)."""

from __future__ import annotations

import pytest

from jobs.platform.spark import SPARK_CONF_ENV, conf_from_env


def test_pairs_separated_by_spaces_or_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SPARK_CONF_ENV, "spark.a=1, spark.b.c=x=y  spark.d=")
    assert conf_from_env() == {"spark.a": "1", "spark.b.c": "x=y", "spark.d": ""}
    monkeypatch.setenv(SPARK_CONF_ENV, "")
    assert conf_from_env() == {}


@pytest.mark.parametrize("bad", ["spark.sql.codegen.factoryMode", "executor.memory=2g"])
def test_a_bad_pair_is_named(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv(SPARK_CONF_ENV, f"spark.ok=1 {bad}")
    with pytest.raises(ValueError, match=f"CRM_METRICS_SPARK_CONF: '{bad}' is not a spark.<setting>=<value> pair"):
        conf_from_env()


def test_the_session_takes_them(spark: object) -> None:
    """The suite's own setting reached the shared session (tests/conftest.py sets it)."""
    assert spark.conf.get("spark.sql.codegen.factoryMode") == "NO_CODEGEN"  # type: ignore[attr-defined]
