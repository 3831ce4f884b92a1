"""One logger, tracer and metrics object for the whole service.

POWERTOOLS_* variables (set in template.yaml) configure them; the defaults below keep the names right
when the package is imported before those variables exist (tests, scripts).
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "image-recovery"
METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "ImageRecovery"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE)
