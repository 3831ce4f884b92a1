"""devtools.speedups, which tests/conftest.py applies: shared parsed service data, one KMS key pair."""

from __future__ import annotations

import boto3
import botocore.session
from moto import mock_aws

from devtools import speedups


def test_new_sessions_reuse_the_parsed_service_descriptions():
    speedups.apply()  # again: harmless

    first, second = botocore.session.get_session(), botocore.session.get_session()

    assert first.get_service_data("dynamodb") is second.get_service_data("dynamodb")
    assert first.get_component("data_loader") is not second.get_component("data_loader")


def test_kms_keys_stay_distinct_while_sharing_one_key_pair():
    with mock_aws():
        kms = boto3.client("kms", region_name="us-east-1")
        ids = {kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(3)}

    assert len(ids) == 3
