"""The Spark engine: the same per-batch function under ``mapInPandas``, the same sums by ``groupBy``.

Any master URL works (``local[*]``, ``yarn``, ``spark://host:7077``); the
workers need frontdesk installed (``pip install 'frontdesk[spark]'``) and,
for router policies, the router folder at the same path.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ...errors import DataError, FrontdeskError
from ...logs import DecisionLogs
from ..kernel import check_rows, partial_sums
from .local import POLICY_KEYS, POLICY_SUMS, Sums

# A worker's exception arrives wrapped by Spark: these name the line to keep.
WORKER_ERRORS = ("DataError: ", "PolicyError: ", "FrontdeskError: ", "IndexIntegrityError: ")


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


def run_sums(
    df: Any,
    per_batch: Callable[[Any, dict[str, Any]], Any],
    plan: dict[str, Any],
    keys: Sequence[tuple[str, str]],
    sums: Sequence[str],
    maxima: Sequence[str],
) -> Sums:
    """Per key, the added ``sums`` and the largest ``maxima`` of ``per_batch(pdf, plan)``.

    ``df`` is the Spark DataFrame of the rows to read; ``per_batch`` (a
    module-level function, so workers import it) returns a pandas frame with
    the ``keys`` (name, Spark type), ``sums`` and ``maxima`` columns, as for
    :func:`.local.run_sums`. A worker's DataError comes back as one line.
    """
    from pyspark.sql import functions as F

    plan_json = json.dumps(plan)

    def run(frames):  # type: ignore[no-untyped-def]
        local_plan = json.loads(plan_json)
        for pdf in frames:
            if len(pdf):
                yield per_batch(pdf, local_plan)

    schema = ", ".join([*(f"{k} {t}" for k, t in keys), *(f"{c} double" for c in (*sums, *maxima))])
    try:
        rows = (
            df.mapInPandas(run, schema)
            .groupBy(*(k for k, _ in keys))
            .agg(*(F.sum(c).alias(c) for c in sums), *(F.max(c).alias(c) for c in maxima))
            .collect()
        )
    except Exception as exc:  # a worker's DataError/PolicyError arrives wrapped by Spark
        text = str(exc)
        for kind in WORKER_ERRORS:
            if kind in text:
                message = (text.split(kind, 1)[1].strip().splitlines() or [text])[0]
                raise FrontdeskError(f"in a Spark worker: {message}") from None
        raise
    return {
        tuple(r[k] for k, _ in keys): (
            np.array([r[c] for c in sums], dtype=float),
            np.array([r[c] for c in maxima], dtype=float),
        )
        for r in rows
    }


def policy_batch(pdf: Any, plan: dict[str, Any]) -> Any:
    """``simulate policy``'s per-batch function under Spark: rows checked, then summed."""
    check_rows(pdf, "spark partition")
    return partial_sums(pdf, plan)


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
    keys = list(zip(POLICY_KEYS, ("string", "string", "long"), strict=True))
    acc = run_sums(df, policy_batch, plan, keys, POLICY_SUMS, ("wmax",))
    return {(str(seg), str(m), int(rep)): np.append(s, w) for (seg, m, rep), (s, w) in acc.items()}
