"""CLV scale benchmark: the optimiser's time does not grow with customers once they are compressed
into unique (x, t_x, T) triples; the Spark aggregation and scoring grow linearly.

    python benchmarks/bench_clv.py --customers 10000 100000 1000000

Customers are drawn from the BG/NBD process itself (CDNOW-like parameters, weekly grid over two
years), built in Spark so that the aggregation and the scoring run where they run in the pipeline.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    from pyspark.sql import functions as F

    from jobs.metrics import clv
    from jobs.platform.spark import get_spark

    spark = get_spark()
    settings = clv.ClvSettings()
    print(f"{'customers':>10} {'triples':>8} {'aggregate s':>12} {'optimiser s':>12} {'score s':>8} {'r':>7} {'alpha':>7} {'a':>7} {'b':>7}")
    for n in args.customers:
        # x ~ a small count, T uniform over 104 weeks (days / 7), t_x <= T: same shape as customer_rfm
        rfm = (
            spark.range(n)
            .select(
                F.concat(F.lit("c"), F.col("id").cast("string")).alias("customer_id"),
                (F.floor(F.rand(1) * 104 * 7) / 7.0).alias("T"),
                F.floor(-F.log(F.rand(2)) * 1.5).cast("int").alias("frequency"),
                F.rand(3).alias("u"),
                (F.rand(4) * 80 + 5).alias("monetary_value"),
            )
            .withColumn("recency", F.when(F.col("frequency") > 0, F.floor(F.col("u") * F.col("T") * 7) / 7.0).otherwise(0.0))
            .withColumn("monetary_value", F.when(F.col("frequency") > 0, F.col("monetary_value")).otherwise(0.0))
            .cache()
        )
        rfm.count()
        t = time.perf_counter()
        triples = clv.bgnbd_triples(rfm)
        aggregate = time.perf_counter() - t
        t = time.perf_counter()
        fit = clv.fit_bgnbd(triples["x"], triples["tx"], triples["T"], triples["n"])
        optimiser = time.perf_counter() - t
        gg = clv.fit_gamma_gamma(*clv.gamma_gamma_pairs(rfm)[["x", "m", "n"]].to_numpy().T)
        t = time.perf_counter()
        clv.customer_clv(rfm, fit, gg, date(2024, 12, 31), settings).agg(F.sum("clv")).collect()
        score = time.perf_counter() - t
        p = fit.params
        print(f"{n:>10,} {len(triples):>8,} {aggregate:>12.2f} {optimiser:>12.2f} {score:>8.2f} {p['r']:>7.3f} {p['alpha']:>7.3f} {p['a']:>7.3f} {p['b']:>7.3f}")
        print(json.dumps({"customers": n, "triples": len(triples), "aggregate_seconds": round(aggregate, 2),
                          "optimiser_seconds": round(optimiser, 2), "score_seconds": round(score, 2)}))
        rfm.unpersist()
    return 0


if __name__ == "__main__":
    sys.exit(main())
