"""The one place a SparkSession is built.

Defaults suit a laptop or CI (local[*], few shuffle partitions, UTC). A Spark connection
(`AIRFLOW_CONN_CRM_SPARK`, e.g. `spark://127.0.0.1:7077`, or `sc://host:15002` for Spark Connect)
or the `CRM_METRICS_SPARK_MASTER` variable points the same jobs at a cluster.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.platform.lake import lake_connection, s3a_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SPARK_MASTER_ENV = "CRM_METRICS_SPARK_MASTER"
SPARK_CONN_ENV = "AIRFLOW_CONN_CRM_SPARK"
JARS_ENV = "CRM_METRICS_JARS"
SPARK_CONF_ENV = "CRM_METRICS_SPARK_CONF"
# `make install` copies them here from Maven Central (infra/spark/pom.xml): Delta Lake, S3A and
# its AWS SDK modules, the PostgreSQL JDBC driver
DEFAULT_JARS_DIR = Path(__file__).resolve().parents[2] / ".jars"
DELTA_SETTINGS = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def spark_jars() -> list[str]:
    """The JVM packages fetched by `make install`; an error names the command when they are absent
    (nothing is ever downloaded at session start)."""
    folder = Path(os.environ.get(JARS_ENV) or DEFAULT_JARS_DIR)
    jars = sorted(str(p) for p in folder.glob("*.jar"))
    if not any("delta-spark" in Path(j).name for j in jars):
        raise FileNotFoundError(
            f"no Delta Lake jars in {folder}: run `make install` (Maven copies them from infra/spark/pom.xml) "
            f"or point ${JARS_ENV} at a folder holding them"
        )
    return jars


def conf_from_env() -> dict[str, str]:
    """Extra Spark settings from $CRM_METRICS_SPARK_CONF: `key=value` pairs separated by spaces or
    commas, applied over the defaults below (e.g. `spark.sql.codegen.factoryMode=NO_CODEGEN`,
    which the tests set: see docs/benchmarks.md)."""
    out = {}
    for item in os.environ.get(SPARK_CONF_ENV, "").replace(",", " ").split():
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("spark."):
            raise ValueError(f"${SPARK_CONF_ENV}: {item!r} is not a spark.<setting>=<value> pair; "
                             "separate pairs with spaces or commas")
        out[key] = value
    return out


def spark_master(explicit: str | None = None) -> str:
    return explicit or os.environ.get(SPARK_MASTER_ENV) or os.environ.get(SPARK_CONN_ENV) or "local[*]"


def shuffle_partitions(master: str) -> int:
    """On one machine, 16: adaptive execution coalesces them to a few for small data, while a
    10M-line history keeps each sort or window partition small enough for a 2 GB heap (with 2,
    the daily run at 10M order lines ran out of memory sorting order lines for their latest
    version)."""
    if master.startswith("local"):
        return int(os.environ.get("CRM_METRICS_SHUFFLE_PARTITIONS", "16"))
    return int(os.environ.get("CRM_METRICS_SHUFFLE_PARTITIONS", "64"))


# set on every session, local or remote (runtime SQL settings)
RUNTIME_SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}
CONNECT_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"


def session_settings(master: str) -> dict[str, str]:
    """Every setting of a session this project builds on `master` (a local or cluster master;
    the same for a Spark Connect server's own session), $CRM_METRICS_SPARK_CONF last."""
    settings = {
        **RUNTIME_SETTINGS,
        "spark.sql.shuffle.partitions": str(shuffle_partitions(master)),
        "spark.sql.adaptive.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.driver.memory": os.environ.get("CRM_METRICS_DRIVER_MEMORY", "2g"),
        # A run generates more query classes than the default cache's 100 entries, so later marts
        # (and the next run in the same process) compiled them again: 10-15% of a small run's
        # time (1,500 customers, A/B in fresh processes). Not measured at 10M lines.
        "spark.sql.codegen.cache.maxEntries": "4000",
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{Path(__file__).with_name('log4j2.properties')}",
        "spark.jars": ",".join(spark_jars()),
        **DELTA_SETTINGS,
        **s3a_settings(lake_connection()),
    }
    if master.startswith("local"):
        # list daily lake partitions on the driver: a listing job costs more than it saves here
        settings["spark.sql.sources.parallelPartitionDiscovery.threshold"] = "4096"
        # Delta rebuilds a table's state with 50 tasks by default: most of a small table's read time
        settings["spark.databricks.delta.snapshotPartitions"] = "2"
    else:
        settings["spark.driver.host"] = os.environ.get("CRM_METRICS_DRIVER_HOST", "127.0.0.1")
    # The UI is off, but its status store still keeps 1,000 queries, jobs and stages with their
    # plans; a long-lived process (a backfill, dag.test, the test suite) filled the heap with them.
    for key in ("spark.sql.ui.retainedExecutions", "spark.ui.retainedJobs", "spark.ui.retainedStages"):
        settings[key] = "100"
    return {**settings, **conf_from_env()}


def connect_server_command(host: str, port: int, master: str = "local[*]") -> list[str]:
    """The command line of a Spark Connect server whose session is set up like get_spark's own
    (`crm-metrics spark-server`, and the tests' server): tasks that reach it with
    `sc://host:port` start no JVM of their own."""
    import pyspark

    settings = {**session_settings(master), "spark.connect.grpc.binding.address": host,
                "spark.connect.grpc.binding.port": str(port)}
    submit = Path(pyspark.__file__).resolve().parent / "bin" / "spark-submit"
    return [str(submit), "--class", CONNECT_SERVER_CLASS, "--master", master, "--name", "crm-metrics-connect",
            *[arg for key, value in settings.items() for arg in ("--conf", f"{key}={value}")], "spark-internal"]


def get_spark(master: str | None = None, app_name: str = "crm-metrics", extra: dict[str, str] | None = None) -> SparkSession:
    """Build (or reuse) the session. Settings that matter for correctness: UTC session time zone."""
    from pyspark.sql import SparkSession

    master = spark_master(master)
    # Python workers (the CLV pandas UDF) must run this interpreter, which has scipy and pandas;
    # on a real cluster set PYSPARK_PYTHON to the environment shipped with the job.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if master.startswith("sc://"):
        session = SparkSession.builder.remote(master).appName(app_name).getOrCreate()
        # runtime settings only: the server owns the rest (crm-metrics spark-server sets them up)
        runtime = {**RUNTIME_SETTINGS, "spark.sql.shuffle.partitions": str(shuffle_partitions(master)),
                   **conf_from_env(), **(extra or {})}
        for key, value in runtime.items():
            session.conf.set(key, value)
        return session
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in {**session_settings(master), **(extra or {})}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    # a session built earlier in this process (dag.test, a backfill, tests) keeps its Hadoop
    # settings: give it the lake connection of now, as a new session would get
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    for key, value in s3a_settings(lake_connection()).items():
        hadoop.set(key.removeprefix("spark.hadoop."), value)
    return spark


def release_table_caches() -> None:
    """Forget the DataFrames this process's session still caches (ones a failed step left
    persisted) and Delta's cached table logs and snapshot states (each holds a cached DataFrame
    and a cloned session), if it has a session. Called at the end of a run: a process that runs
    many dates or many lakes (a backfill, dag.test, the tests) otherwise keeps every table it ever
    read until the heap is full. Other threads' queries stay correct: a dropped block or table log
    is computed or read again when next needed. On Spark Connect the server owns the cache."""
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    jvm = getattr(session, "_jvm", None)
    if session is not None and jvm is not None:
        session.catalog.clearCache()
        jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()
