"""One logger and one metrics object for the whole service.

POWERTOOLS_* variables (set in template.yaml) configure them; the defaults below keep the names right
when the package is imported before those variables exist (tests, scripts).

There is deliberately no Powertools Tracer: importing it builds the X-Ray SDK's recorder, which creates
a sampling client at import and adds about 100 ms to every cold start (see bench/). The functions keep
`Tracing: Active`, so X-Ray still records each invocation, its cold start and its errors.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "image-recovery"
METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "ImageRecovery"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE)
