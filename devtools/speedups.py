"""Process-wide shortcuts for running many short-lived local stacks in one process; they change no behaviour.

The test suite applies them (tests/conftest.py). The benchmark does not: it measures cold clients as Lambda
has them. Each one is safe to apply more than once.
"""

from __future__ import annotations

import functools

import botocore.loaders
import botocore.session
import moto.kms.models

_applied = False


def apply() -> None:
    global _applied
    if not _applied:
        _share_botocore_data()
        _one_kms_key_pair_per_spec()
        _applied = True


def _share_botocore_data() -> None:
    """Parse botocore's service descriptions once per process instead of once per botocore session.

    Every `mock_aws` resets boto3's default session, image_recovery.aws makes a session per service and
    PynamoDB one per model binding: each new session re-read and re-parsed the same JSON files (endpoints,
    the dynamodb, sqs and s3 models and their rule sets), about 0.3 s of every integration test. The files
    do not change while a process runs, so loaders with the same search path share one cache (the one
    botocore's `instance_cache` fills); everything else about a session stays its own.
    """
    create_loader = botocore.loaders.create_loader
    caches: dict[str | None, dict] = {}

    def shared_cache_loader(search_path_string: str | None = None) -> botocore.loaders.Loader:
        loader = create_loader(search_path_string)
        loader._cache = caches.setdefault(search_path_string, {})
        return loader

    botocore.session.create_loader = shared_cache_loader


def _one_kms_key_pair_per_spec() -> None:
    """moto gives every table with an SSESpecification a default KMS key, and generates an RSA key pair for
    each KMS key whatever its spec: about 0.1 s per `build_stack`. Nothing here signs or encrypts with it,
    so one key pair per spec serves the whole process (key ids and ARNs stay unique per key)."""
    moto.kms.models.generate_private_key = functools.cache(moto.kms.models.generate_private_key)
