"""Create the stack's tables, queues and bucket on moto from template.yaml's own definitions.

Tests, the demo and the benchmarks all build their resources here, so the local schema is the
template's schema and cannot drift. Function environments come from the template too (Globals plus
each function's own variables), with intrinsic functions resolved against the local resources.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
ACCOUNT = "123456789012"
BUILT_TYPES = ("AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::S3::Bucket")


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that turns short-form intrinsics (!Ref, !GetAtt, !Sub, ...) into their long form."""


def _intrinsic(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE) -> dict:
    """The template as a dict of its own: callers may change it. Parsed once per file version (parsing the
    YAML costs far more than building the stack from it, and the tests build a stack per test)."""
    resolved = path.resolve()
    return copy.deepcopy(_parsed_template(resolved, resolved.stat().st_mtime_ns))


@functools.cache
def _parsed_template(path: Path, mtime_ns: int) -> dict:  # mtime_ns: an edited file is parsed again
    return yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


@dataclass
class LocalStack:
    """Physical names of the resources built from the template, by logical id."""

    template: dict
    region: str
    prefix: str
    refs: dict[str, str] = field(default_factory=dict)
    arns: dict[str, str] = field(default_factory=dict)

    # ------------------------------------------------------------ intrinsics
    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "Ref" in value:
            return self._ref(value["Ref"])
        if "Fn::GetAtt" in value:
            logical, attribute = value["Fn::GetAtt"]
            return self._get_att(logical, attribute)
        if "Fn::Sub" in value:
            return re.sub(r"\$\{([^}]+)\}", lambda m: str(self._sub_var(m.group(1))), value["Fn::Sub"])
        unsupported = [k for k in value if k.startswith("Fn::")]
        if unsupported:
            raise NotImplementedError(f"template_resources cannot resolve {unsupported[0]}")
        return {k: self.resolve(v) for k, v in value.items()}

    def _ref(self, name: str) -> str:
        pseudo = {"AWS::Region": self.region, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"}
        if name in pseudo:
            return pseudo[name]
        parameter = self.template.get("Parameters", {}).get(name)
        if parameter is not None:
            if "Default" not in parameter:
                raise KeyError(f"parameter {name} has no default; pass it in overrides")
            return str(parameter["Default"])
        if name in self.refs:
            return self.refs[name]
        raise KeyError(f"{name} is not built locally (only {', '.join(BUILT_TYPES)} are)")

    def _get_att(self, logical: str, attribute: str) -> str:
        if attribute == "Arn":
            return self.arns[logical]
        if attribute == "QueueName":
            return self.refs[logical].rsplit("/", 1)[-1]
        raise NotImplementedError(f"GetAtt {logical}.{attribute}")

    def _sub_var(self, expression: str) -> str:
        if "." in expression:
            return self._get_att(*expression.split(".", 1))
        return self._ref(expression)

    # ------------------------------------------------------------ environment
    def function_environment(self, logical_id: str) -> dict[str, str]:
        """Globals + the function's own variables, resolved; what Lambda would set for it."""
        global_vars = self.template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        function = self.template["Resources"][logical_id]["Properties"]
        own_vars = function.get("Environment", {}).get("Variables", {})
        return {k: str(self.resolve(v)) for k, v in {**global_vars, **own_vars}.items()}

    def function_logical_ids(self) -> dict[str, str]:
        """functions/<folder>/ -> the logical id of the function built from it (e.g. "api" -> "ApiFunction")."""
        return {
            resource["Properties"]["CodeUri"].strip("/").split("/")[-1]: logical_id
            for logical_id, resource in self.template["Resources"].items()
            if resource["Type"] == "AWS::Serverless::Function"
        }

    def physical(self, logical_id: str) -> str:
        return self.refs[logical_id]


def _name(prefix: str, logical_id: str) -> str:
    return f"{prefix}-{re.sub(r'(?<!^)(?=[A-Z])', '-', logical_id).lower()}"


Clients = Callable[[str], Any]  # service name -> a client of it, made once per build_stack


def _create_table(stack: LocalStack, logical_id: str, props: dict, clients: Clients) -> None:
    client = clients("dynamodb")
    name = _name(stack.prefix, logical_id)
    kwargs: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "ProvisionedThroughput"):
        if key in props:
            kwargs[key] = props[key]
    if "StreamSpecification" in props:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    if "SSESpecification" in props:
        kwargs["SSESpecification"] = {"Enabled": bool(props["SSESpecification"].get("SSEEnabled"))}
    description = client.create_table(**kwargs)["TableDescription"]
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        client.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
        )
    if props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
        client.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    stack.refs[logical_id] = name
    stack.arns[logical_id] = description["TableArn"]


def _create_queue(stack: LocalStack, logical_id: str, props: dict, clients: Clients) -> None:
    client = clients("sqs")
    name = _name(stack.prefix, logical_id)
    attributes = {}
    for key, value in props.items():
        if key == "RedrivePolicy":
            attributes[key] = json.dumps(stack.resolve(value))
        elif key not in ("QueueName", "Tags"):
            resolved = stack.resolve(value)
            attributes[key] = str(resolved).lower() if isinstance(resolved, bool) else str(resolved)
    url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    stack.refs[logical_id] = url
    stack.arns[logical_id] = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]


def _create_bucket(stack: LocalStack, logical_id: str, props: dict, clients: Clients) -> None:
    client = clients("s3")
    name = _name(stack.prefix, logical_id)
    if stack.region == "us-east-1":
        client.create_bucket(Bucket=name)
    else:
        client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": stack.region})
    if "PublicAccessBlockConfiguration" in props:
        client.put_public_access_block(
            Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
        )
    if "BucketEncryption" in props:
        # CloudFormation's ServerSideEncryptionByDefault is the API's ApplyServerSideEncryptionByDefault.
        rules = [
            {
                ("ApplyServerSideEncryptionByDefault" if k == "ServerSideEncryptionByDefault" else k): v
                for k, v in rule.items()
            }
            for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        ]
        client.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    stack.refs[logical_id] = name
    stack.arns[logical_id] = f"arn:aws:s3:::{name}"


_CREATORS = {
    "AWS::DynamoDB::Table": _create_table,
    "AWS::SQS::Queue": _create_queue,
    "AWS::S3::Bucket": _create_bucket,
}


def build_stack(
    region: str = "us-east-1", prefix: str = "image-recovery", template_path: Path = TEMPLATE
) -> LocalStack:
    """Create every table, queue and bucket of the template (moto must already be answering)."""
    stack = LocalStack(load_template(template_path), region, prefix)
    clients = functools.cache(lambda service: boto3.client(service, region_name=region))
    pending = {k: v for k, v in stack.template["Resources"].items() if v["Type"] in _CREATORS}
    while pending:
        progressed = False
        for logical_id, resource in list(pending.items()):
            try:
                _CREATORS[resource["Type"]](stack, logical_id, resource.get("Properties", {}), clients)
            except KeyError as missing:
                if str(missing).strip("'") in pending:
                    continue  # depends on a resource not built yet (a DLQ, say); next round
                raise
            del pending[logical_id]
            progressed = True
        if not progressed:
            raise RuntimeError(f"circular references between {sorted(pending)}")
    return stack
