"""Great Expectations gates on Spark DataFrames, plus the checks GE has no expectation for.

One ephemeral GE context per process; suites are built from schemas/expectations.py. Results
become `CheckResult`s, stored in marts.dq_results, and rendered as Data Docs in the lake.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)
logging.getLogger("great_expectations").setLevel(logging.WARNING)

EXAMPLES = 5
# Up to this many rows a batch is validated with GE's pandas engine (one Arrow transfer, then
# in-memory checks: ~50x faster than one Spark job per metric on small data). Larger batches stay
# in Spark, so the driver's memory is bounded by this number, not by the data.
PANDAS_MAX_ROWS = int(os.environ.get("CRM_METRICS_GE_PANDAS_MAX_ROWS", "200000"))


@dataclass(frozen=True)
class CheckResult:
    suite: str
    expectation: str
    success: bool
    observed_value: str
    details: str = ""

    def describe(self) -> str:
        return f"{self.suite}: {self.expectation} failed (observed {self.observed_value}; examples {self.details or '-'})"


class GateFailed(RuntimeError):
    """A quality gate stopped the run; the message names every failed check."""

    def __init__(self, gate: str, failures: list[CheckResult], counts: dict[str, int] | None = None) -> None:
        self.failures = failures
        # what the gate counted before it stopped (rows checked, quarantined): the run's record keeps them
        self.counts = counts or {}
        lines = "\n  ".join(f.describe() for f in failures[:20])
        more = f"\n  ... and {len(failures) - 20} more" if len(failures) > 20 else ""
        super().__init__(f"quality gate '{gate}' failed {len(failures)} check(s); nothing was published:\n  {lines}{more}")


@lru_cache(maxsize=1)
def _context() -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    ctx.data_sources.add_spark(name="crm_lake")
    ctx.data_sources.add_pandas(name="crm_lake_small")
    return ctx


# the run whose validation results the process's GE store holds (see begin_run)
_STORE_RUN: dict[str, str] = {}


def begin_run(run_key: str) -> None:
    """Keep only this run's validation results in the process's GE store.

    Data Docs then show the run's own validations, as they do when each step is its own Airflow
    task process. The docs index is rebuilt from every stored result (about 20 ms each), so in a
    long-lived process (a backfill, `dag.test`, a test worker) it would otherwise cost more with
    every earlier run."""
    if _STORE_RUN.get("key") == run_key:
        return
    store = _context().validation_results_store
    for key in store.list_keys():
        store.remove_key(key)
    _STORE_RUN["key"] = run_key


def _expectation_label(kind: str, kwargs: dict[str, Any]) -> str:
    target = kwargs.get("column") or kwargs.get("column_list") or (
        f"{kwargs.get('column_A')}>={kwargs.get('column_B')}" if "column_A" in kwargs else ""
    )
    extra = {k: v for k, v in kwargs.items() if k not in ("column", "column_list", "column_A", "column_B", "value_set", "or_equal")}
    label = f"{kind}({target})" if target else kind
    return label + (f" {json.dumps(extra, default=str, sort_keys=True)}" if extra else "")


def run_suite(
    df: DataFrame, suite_name: str, expectations: list[tuple[str, dict[str, Any]]], rows: int | None = None
) -> list[CheckResult]:
    """Validate a DataFrame with a suite; one CheckResult per expectation.

    `rows` (when known) picks the engine: pandas up to PANDAS_MAX_ROWS, Spark above.
    """
    import great_expectations as gx
    import great_expectations.expectations as gxe

    ctx = _context()
    if rows is None:
        rows = df.count()
    small = rows <= PANDAS_MAX_ROWS
    data: Any = df.toPandas() if small else df
    source = ctx.data_sources.get("crm_lake_small" if small else "crm_lake")
    try:
        asset = source.get_asset(suite_name)
    except LookupError:
        asset = source.add_dataframe_asset(name=suite_name)
    try:
        batch_def = asset.get_batch_definition("whole")
    except (KeyError, LookupError):
        batch_def = asset.add_batch_definition_whole_dataframe("whole")
    try:
        ctx.suites.delete(suite_name)
    except Exception:  # noqa: BLE001 - absent suite
        pass
    suite = gx.ExpectationSuite(name=suite_name)
    for kind, kwargs in expectations:
        suite.add_expectation(getattr(gxe, kind)(**kwargs))
    suite = ctx.suites.add(suite)
    try:
        ctx.validation_definitions.delete(suite_name)
    except Exception:  # noqa: BLE001 - absent definition
        pass
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=suite_name, data=batch_def, suite=suite))
    # Pass/fail first (one cheap query per metric); details only when something failed.
    result = vd.run(batch_parameters={"dataframe": data}, result_format="BOOLEAN_ONLY")
    if not result.success:
        result = vd.run(
            batch_parameters={"dataframe": data},
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": EXAMPLES},
        )
    out = []
    for r in result.results:
        cfg = r.expectation_config
        res = r.result or {}
        observed = res.get("observed_value")
        if observed is None and "unexpected_count" in res:
            observed = f"{res.get('unexpected_count')} unexpected of {res.get('element_count')}"
        examples = res.get("partial_unexpected_list") or []
        out.append(
            CheckResult(
                suite=suite_name,
                expectation=_expectation_label(type(cfg).__name__ if not hasattr(cfg, "type") else _class_name(cfg.type), dict(cfg.kwargs)),
                success=bool(r.success),
                observed_value=str(observed) if observed is not None else ("passed" if r.success else "failed"),
                details=json.dumps(examples[:EXAMPLES], default=str) if examples else "",
            )
        )
    return out


def _class_name(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def build_data_docs(target: Path) -> Path | None:
    """Render Data Docs (HTML) for the validations of this process into `target`."""
    import hashlib

    ctx = _context()
    site = "docs_" + hashlib.sha1(str(target.resolve()).encode()).hexdigest()[:12]
    try:
        if site not in (ctx.get_site_names() or []):
            ctx.add_data_docs_site(
                site_name=site,
                site_config={
                    "class_name": "SiteBuilder",
                    "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(target)},
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                },
            )
        ctx.build_data_docs(site_names=[site])
    except Exception as exc:  # noqa: BLE001 - docs are a convenience, never a reason to fail
        log.warning("could not build Data Docs: %s", exc)
        return None
    index = target / "index.html"
    return index if index.exists() else None


def check(suite: str, expectation: str, success: bool, observed: Any, details: Any = "") -> CheckResult:
    """A check computed outside GE (reconciliation, referential integrity, rates)."""
    return CheckResult(
        suite=suite,
        expectation=expectation,
        success=bool(success),
        observed_value=str(observed),
        details=json.dumps(details, default=str) if details not in ("", None) else "",
    )
