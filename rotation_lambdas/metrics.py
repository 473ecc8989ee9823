"""Per-step metrics in CloudWatch's embedded metric format (aws-lambda-powertools Metrics).

Each step invocation writes one EMF record to stdout, which CloudWatch Logs turns into metrics:
``StepSucceeded`` or ``StepFailed`` (count) and ``StepDuration`` (milliseconds), with the engine
family, the strategy and the step as dimensions. A failure carries its error category as
metadata (searchable in the log record; not a dimension, so alarms see one metric per step).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

DEFAULT_NAMESPACE = "Keyturn"
ENV_METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"


class StepMetrics:
    """Records one step's outcome and duration, and flushes at once (one record a step)."""

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace or os.environ.get(ENV_METRICS_NAMESPACE) or DEFAULT_NAMESPACE
        self._metrics = Metrics(namespace=self.namespace)

    def record(
        self,
        dimensions: Mapping[str, str],
        *,
        succeeded: bool,
        duration_ms: int,
        error_category: str | None = None,
    ) -> None:
        metrics = self._metrics
        for name, value in dimensions.items():
            metrics.add_dimension(name=name, value=value)
        outcome = "StepSucceeded" if succeeded else "StepFailed"
        metrics.add_metric(name=outcome, unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="StepDuration", unit=MetricUnit.Milliseconds, value=duration_ms)
        if error_category is not None:
            metrics.add_metadata(key="error_category", value=error_category)
        metrics.flush_metrics()
        # With POWERTOOLS_METRICS_DISABLED, flushing keeps the set: the next step would warn.
        metrics.clear_metrics()
