"""Create the stack's tables, queues and bucket on moto from template.yaml's own definitions.

Tests, the demo and the benchmarks all build their resources here, so the local schema is the
template's schema and cannot drift. Function environments come from the template too (Globals plus
each function's own variables), with intrinsic functions resolved against the local resources.

Parameters take their defaults unless `build_stack(parameters=...)` overrides them, as `sam deploy
--parameter-overrides` would. A resource whose `Condition` is false is not built and its function does not
exist. Where the template attaches to an existing resource instead of creating one (ATTACHED), the named
resource stands in for it: with ExistingTravelTableName set, `physical("TravelTable")` and its ARN name the
host's table, so everything that addresses the travel table does so either way. Resources of other types are
not built; `GetAtt <Distribution>.DomainName` of a CloudFront distribution resolves to the placeholder
`<logical id, lower case>.cloudfront.local`.
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
# A resource the template creates only when a parameter does not name an existing one: logical id -> parameter.
ATTACHED = {"TravelTable": "ExistingTravelTableName"}
_NO_VALUE = object()  # what Ref AWS::NoValue resolves to: removed from the list or mapping that holds it


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that turns short-form intrinsics (!Ref, !GetAtt, !Sub, ...) into their long form."""


def _intrinsic(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
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
    parameters: dict[str, str] = field(default_factory=dict)  # overrides of the parameters' defaults

    def __post_init__(self) -> None:
        self._check_parameters(self.parameters)

    def _check_parameters(self, names: dict[str, str]) -> None:
        unknown = sorted(set(names) - set(self.template.get("Parameters", {})))
        if unknown:
            raise KeyError(f"the template has no parameter {', '.join(unknown)}")

    def update_parameters(self, **overrides: str) -> None:
        """What a later `sam deploy --parameter-overrides` changes for the functions: their environments,
        policies, and which of them exist. Resources already built stay as they were built."""
        self._check_parameters(overrides)
        self.parameters.update(overrides)

    def exists(self, logical_id: str) -> bool:
        """Whether the stack has this resource for its parameters (its Condition, if any, is true)."""
        condition = self.template["Resources"][logical_id].get("Condition")
        return condition is None or self.condition(condition)

    # ------------------------------------------------------------ intrinsics
    def resolve(self, value: Any) -> Any:
        """Ref, GetAtt, Sub, Join, Split, Select and If (with the template's Conditions); AWS::NoValue
        drops the list item or the key it stands for, as CloudFormation does."""
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if "Ref" in value:
            return self._ref(value["Ref"])
        if "Fn::GetAtt" in value:
            logical, attribute = value["Fn::GetAtt"]
            return self._get_att(logical, attribute)
        if "Fn::Sub" in value:
            return self._sub(value["Fn::Sub"])
        if "Fn::Join" in value:
            delimiter, items = value["Fn::Join"]
            return delimiter.join(self.resolve(items))
        if "Fn::Split" in value:
            delimiter, text = value["Fn::Split"]
            return self.resolve(text).split(delimiter)
        if "Fn::Select" in value:
            index, items = value["Fn::Select"]
            return self.resolve(items)[int(self.resolve(index))]
        if "Fn::If" in value:
            condition, when_true, when_false = value["Fn::If"]
            return self.resolve(when_true if self.condition(condition) else when_false)
        unsupported = [k for k in value if k.startswith("Fn::")]
        if unsupported:
            raise NotImplementedError(f"template_resources cannot resolve {unsupported[0]}")
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}

    def condition(self, name: str) -> bool:
        """The value of one of the template's Conditions for the stack's parameters."""
        return self._evaluate(self.template["Conditions"][name])

    def _evaluate(self, expression: dict) -> bool:
        ((function, arguments),) = expression.items()
        if function == "Condition":
            return self.condition(arguments)
        if function == "Fn::Equals":
            first, second = (self.resolve(a) for a in arguments)
            return str(first) == str(second)
        if function == "Fn::Not":
            return not self._evaluate(arguments[0])
        if function == "Fn::And":
            return all(self._evaluate(a) for a in arguments)
        if function == "Fn::Or":
            return any(self._evaluate(a) for a in arguments)
        raise NotImplementedError(f"template_resources cannot evaluate {function}")

    def _sub(self, argument: str | list) -> str:
        template, variables = (argument, {}) if isinstance(argument, str) else argument
        values = {name: self.resolve(v) for name, v in variables.items()}

        def one(match: re.Match) -> str:
            name = match.group(1)
            return str(values[name]) if name in values else str(self._sub_var(name))

        return re.sub(r"\$\{([^}]+)\}", one, template)

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::StackName": self.prefix,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return str(self.parameters[name])
        parameter = self.template.get("Parameters", {}).get(name)
        if parameter is not None:
            if "Default" not in parameter:
                raise KeyError(f"parameter {name} has no default; pass it in overrides")
            return str(parameter["Default"])
        self._require(name)
        if name in self.refs:
            return self.refs[name]
        raise KeyError(f"{name} is not built locally (only {', '.join(BUILT_TYPES)} are)")

    def _require(self, logical_id: str) -> None:
        """CloudFormation fails a reference to a resource whose Condition is false; so does the local stack
        (a stand-in from ATTACHED is still reachable through `physical`)."""
        if logical_id in self.template.get("Resources", {}) and not self.exists(logical_id):
            raise KeyError(f"{logical_id} does not exist for the stack's parameters (its Condition is false)")

    def _get_att(self, logical: str, attribute: str) -> str:
        self._require(logical)
        if attribute == "Arn":
            return self.arns[logical]
        if attribute == "QueueName":
            return self.refs[logical].rsplit("/", 1)[-1]
        resource_type = self.template["Resources"].get(logical, {}).get("Type")
        if (resource_type, attribute) == ("AWS::CloudFront::Distribution", "DomainName"):
            return f"{logical.lower()}.cloudfront.local"  # not built locally: a stable stand-in for d123.cloudfront.net
        raise NotImplementedError(f"GetAtt {logical}.{attribute}")

    def _sub_var(self, expression: str) -> str:
        if "." in expression:
            return self._get_att(*expression.split(".", 1))
        return self._ref(expression)

    # ------------------------------------------------------------ environment
    def function_environment(self, logical_id: str) -> dict[str, str]:
        """Globals + the function's own variables, resolved; what Lambda would set for it."""
        self._require(logical_id)
        global_vars = self.template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        function = self.template["Resources"][logical_id]["Properties"]
        own_vars = function.get("Environment", {}).get("Variables", {})
        return {k: str(self.resolve(v)) for k, v in {**global_vars, **own_vars}.items()}

    def function_logical_ids(self) -> dict[str, str]:
        """functions/<folder>/ -> the logical id of the function built from it (e.g. "api" -> "ApiFunction")."""
        return {
            resource["Properties"]["CodeUri"].strip("/").split("/")[-1]: logical_id
            for logical_id, resource in self.template["Resources"].items()
            if resource["Type"] == "AWS::Serverless::Function" and self.exists(logical_id)
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
    if "VersioningConfiguration" in props:
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration=props["VersioningConfiguration"])
    stack.refs[logical_id] = name
    stack.arns[logical_id] = f"arn:aws:s3:::{name}"


_CREATORS = {
    "AWS::DynamoDB::Table": _create_table,
    "AWS::SQS::Queue": _create_queue,
    "AWS::S3::Bucket": _create_bucket,
}


def _attach(stack: LocalStack, logical_id: str, name: str) -> None:
    """The existing resource `name` stands in for `logical_id`, which the template does not create."""
    resource_type = stack.template["Resources"][logical_id]["Type"]
    if resource_type != "AWS::DynamoDB::Table":
        raise NotImplementedError(f"cannot attach {logical_id} ({resource_type})")
    stack.refs[logical_id] = name
    stack.arns[logical_id] = f"arn:aws:dynamodb:{stack.region}:{ACCOUNT}:table/{name}"


def build_stack(
    region: str = "us-east-1",
    prefix: str = "image-recovery",
    template_path: Path = TEMPLATE,
    parameters: dict[str, str] | None = None,
) -> LocalStack:
    """Create every table, queue and bucket the template has for `parameters` (moto must already be answering).

    `parameters` overrides the template's defaults, e.g. {"ExistingTravelTableName": "host-travel"}: the
    stack then builds no travel table and addresses that one (which the caller creates)."""
    stack = LocalStack(load_template(template_path), region, prefix, parameters=dict(parameters or {}))
    clients = functools.cache(lambda service: boto3.client(service, region_name=region))
    for logical_id, parameter in ATTACHED.items():
        if parameter in stack.template.get("Parameters", {}) and not stack.exists(logical_id):
            _attach(stack, logical_id, stack.resolve({"Ref": parameter}))
    pending = {k: v for k, v in stack.template["Resources"].items() if v["Type"] in _CREATORS and stack.exists(k)}
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
