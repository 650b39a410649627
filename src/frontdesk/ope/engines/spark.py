"""The Spark engine: the same per-batch function under ``mapInPandas``, the same sums by ``groupBy``.

Any master URL works (``local[*]``, ``yarn``, ``spark://host:7077``); the
workers need frontdesk installed (``pip install 'frontdesk[spark]'``) and,
for router policies, the router folder at the same path.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np

from ...errors import DataError, FrontdeskError
from ...logs import DecisionLogs
from ..kernel import N_VALUES, check_rows, partial_sums


def spark_session(master: str = "local[*]") -> Any:
    """A SparkSession on ``master`` (reused when one is running), quiet and loopback-bound."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise FrontdeskError(
            "the spark engine needs PySpark: pip install 'frontdesk[spark]' (and Java 17)"
        ) from None
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master(master)
        .appName("frontdesk-simulate-policy")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def run_spark(
    logs: DecisionLogs, plan: dict[str, Any], master: str = "local[*]", spark: Any = None
) -> dict[tuple[str, str, int], np.ndarray]:
    """Sums per (segment, metric, replicate) and the largest weight, computed by Spark."""
    spark = spark or spark_session(master)  # says which extra is missing, if PySpark is
    from pyspark.sql import functions as F

    df = spark.read.parquet(*[str(f) for f in logs.files]).select(*plan["columns"])
    p = F.col("propensity")
    bad = (
        df.withColumn("_file", F.input_file_name())
        .filter(p.isNull() | (p <= 0) | (p > 1))
        .select("_file", "contact_id", "propensity")
        .limit(1)
        .collect()
    )
    if bad:
        row = bad[0]
        raise DataError(
            row["_file"].removeprefix("file://"), None, "propensity",
            f"{row['propensity']!r} for contact {row['contact_id']}; propensities must be in (0, 1]",
        )  # fmt: skip
    plan_json = json.dumps(plan)

    def per_batch(frames):  # type: ignore[no-untyped-def]
        local_plan = json.loads(plan_json)
        for pdf in frames:
            if len(pdf):
                check_rows(pdf, "spark partition")
                yield partial_sums(pdf, local_plan)

    schema = (
        "seg string, metric string, rep long, "
        + ", ".join(f"v{i} double" for i in range(N_VALUES))
        + ", wmax double"
    )
    parts = df.mapInPandas(per_batch, schema)
    try:
        rows = (
            parts.groupBy("seg", "metric", "rep")
            .agg(
                *(F.sum(f"v{i}").alias(f"v{i}") for i in range(N_VALUES)),
                F.max("wmax").alias("wmax"),
            )
            .collect()
        )
    except Exception as exc:  # a worker's DataError/PolicyError arrives wrapped by Spark
        text = str(exc)
        for kind in ("DataError: ", "PolicyError: ", "FrontdeskError: "):
            if kind in text:
                message = (text.split(kind, 1)[1].strip().splitlines() or [text])[0]
                raise FrontdeskError(f"in a Spark worker: {message}") from None
        raise
    return {
        (r["seg"], r["metric"], int(r["rep"])): np.array(
            [*(r[f"v{i}"] for i in range(N_VALUES)), r["wmax"]]
        )
        for r in rows
    }
