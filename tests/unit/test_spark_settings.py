"""Extra Spark settings from the environment ($CRM_METRICS_SPARK_CONF)."""

from __future__ import annotations

import pytest

from jobs.platform.spark import SPARK_CONF_ENV, conf_from_env, connect_server_command


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


def test_the_connect_server_gets_a_task_session_s_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """`crm-metrics spark-server`'s command line: the Connect server class on the given address,
    and the settings a task's own session would have (Delta, the jars, UTC, memory, extra conf)."""
    monkeypatch.setenv("CRM_METRICS_DRIVER_MEMORY", "3g")
    monkeypatch.setenv(SPARK_CONF_ENV, "spark.sql.codegen.factoryMode=NO_CODEGEN")
    command = connect_server_command("127.0.0.1", 15123, "local[2]")
    assert command[0].endswith("/bin/spark-submit") and command[-1] == "spark-internal"
    assert command[command.index("--class") + 1] == "org.apache.spark.sql.connect.service.SparkConnectServer"
    assert command[command.index("--master") + 1] == "local[2]"
    confs = dict(command[i + 1].split("=", 1) for i, arg in enumerate(command) if arg == "--conf")
    assert confs["spark.connect.grpc.binding.address"] == "127.0.0.1"
    assert confs["spark.connect.grpc.binding.port"] == "15123"
    assert confs["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert confs["spark.sql.session.timeZone"] == "UTC"
    assert confs["spark.driver.memory"] == "3g"
    assert confs["spark.sql.codegen.factoryMode"] == "NO_CODEGEN"
    assert any("delta-spark" in jar for jar in confs["spark.jars"].split(","))
