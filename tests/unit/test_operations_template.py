"""template.yaml's operations parts: dashboard, alarms, worker scaling and retry permissions, outputs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools import ops
from devtools.template_resources import load_template

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]
PARAMETERS = TEMPLATE["Parameters"]
GLOBAL_ENV = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
NAMESPACE = GLOBAL_ENV["POWERTOOLS_METRICS_NAMESPACE"]
SERVICE = "physical-AWS-StackName"  # POWERTOOLS_SERVICE_NAME is the stack's name, as substitute() names it
FUNCTIONS = tuple(
    name for name, resource in load_template()["Resources"].items() if resource["Type"] == "AWS::Serverless::Function"
)
CUSTOM_METRICS = (
    "JobsQueued",
    "JobsSkipped",
    "ImagesGenerated",
    "ImagesRegenerated",
    "GenerationLatency",
    "GenerationFailures",
    "GenerationFaults",
    "ModelUnavailable",
    "FallbackModelUsed",
    "ModelLegacy",
    "SweepMissingFound",
    "ColdStart",
)
ALARMS = tuple(name for name, resource in RESOURCES.items() if resource["Type"] == "AWS::CloudWatch::Alarm")


# ------------------------------------------------------------------ dashboard
def physical(expression: str) -> str:
    """A stand-in for what CloudFormation substitutes for ${Resource} or ${Resource.Attribute}."""
    return "physical-" + expression.replace(".", "-").replace("::", "-")


def substitute(body: str, variables: dict[str, str] | None = None) -> str:
    """Resolve a Fn::Sub string as CloudFormation would: parameters by default, resources by a stand-in."""

    def one(match: re.Match) -> str:
        expression = match.group(1)
        if expression.startswith("!"):
            return "${" + expression[1:] + "}"  # ${!Literal} is the escape for a literal ${Literal}
        if expression in (variables or {}):
            return variables[expression]
        if expression in PARAMETERS:
            return str(PARAMETERS[expression]["Default"])
        logical = expression.split(".", 1)[0]
        assert expression.startswith("AWS::") or logical in RESOURCES, f"${{{expression}}} names nothing"
        return physical(expression)

    return re.sub(r"\$\{([^}]+)\}", one, body)


DASHBOARD = RESOURCES["Dashboard"]
BODY_TEXT, BODY_VARIABLES = DASHBOARD["Properties"]["DashboardBody"]["Fn::Sub"]
# with the default parameters the stack creates its table, so the stream function exists
BODY = json.loads(
    substitute(BODY_TEXT, {"IndexerFunctionName": physical("IndexerFunction"), "BedrockMetricsRegion": "us-west-2"})
)
WIDGETS = BODY["widgets"]


def metric_rows() -> Iterator[tuple[dict, list]]:
    for widget in WIDGETS:
        if widget["type"] == "metric":
            for row in widget["properties"]["metrics"]:
                yield widget, row


def plotted() -> list[dict[str, Any]]:
    """Every plotted metric as {namespace, name, dimensions, stat}, SEARCH expressions included."""
    found = []
    for widget, row in metric_rows():
        if isinstance(row[0], dict):
            search = re.fullmatch(
                r"SEARCH\('\{([^}]*)\} MetricName=\"(\w+)\" service=\"([^\"]+)\"', '(\w+)', \d+\)",
                row[0]["expression"],
            )
            assert search, row[0]["expression"]
            namespace, *dimension_names = search.group(1).split(",")
            found.append(
                {
                    "namespace": namespace,
                    "name": search.group(2),
                    "dimensions": dict.fromkeys(dimension_names) | {"service": search.group(3)},
                    "stat": search.group(4),
                }
            )
            continue
        options = row[-1] if isinstance(row[-1], dict) else {}
        plain = row[:-1] if options else row
        namespace, name, *pairs = plain
        found.append(
            {
                "namespace": namespace,
                "name": name,
                "dimensions": dict(zip(pairs[::2], pairs[1::2], strict=True)),
                "stat": options.get("stat", widget["properties"].get("stat")),
            }
        )
    return found


PLOTTED = plotted()


def test_metrics_and_logs_are_named_after_the_stack() -> None:
    """Two stacks in one account (dev and prod) must not add up each other's metrics or alarms."""
    assert GLOBAL_ENV["POWERTOOLS_SERVICE_NAME"] == {"Ref": "AWS::StackName"}
    for alarm in ALARMS:
        properties = RESOURCES[alarm]["Properties"]
        stats = [m["MetricStat"]["Metric"] for m in properties.get("Metrics", []) if "MetricStat" in m]
        for metric in [properties, *stats]:
            if metric.get("Namespace") == NAMESPACE:
                assert {"Name": "service", "Value": {"Ref": "AWS::StackName"}} in metric["Dimensions"], alarm


def test_dashboard_is_named_after_the_stack() -> None:
    assert DASHBOARD["Type"] == "AWS::CloudWatch::Dashboard"
    assert DASHBOARD["Properties"]["DashboardName"] == {"Fn::Sub": "${AWS::StackName}-image-recovery"}


@pytest.mark.parametrize("metric", CUSTOM_METRICS)
def test_dashboard_plots_every_custom_metric_with_the_service_dimension(metric: str) -> None:
    series = [p for p in PLOTTED if p["namespace"] == NAMESPACE and p["name"] == metric]

    assert series, f"{metric} is not on the dashboard"
    for one in series:
        assert "service" in one["dimensions"]
        assert one["dimensions"]["service"] == SERVICE  # this stack's own, never another's


def test_failures_are_split_by_reason_and_cold_starts_by_function() -> None:
    by_name = {p["name"]: p for p in PLOTTED if p["namespace"] == NAMESPACE}

    assert set(by_name["GenerationFailures"]["dimensions"]) == {"reason", "service"}
    assert set(by_name["ColdStart"]["dimensions"]) == {"function_name", "service"}
    assert by_name["GenerationFailures"]["stat"] == "Sum"


def test_latency_shows_p50_p95_p99_and_average() -> None:
    stats = {p["stat"] for p in PLOTTED if p["name"] == "GenerationLatency"}
    assert stats == {"p50", "p95", "p99", "Average"}
    assert "p99" in {p["stat"] for p in PLOTTED if (p["namespace"], p["name"]) == ("AWS/ApiGateway", "Latency")}


@pytest.mark.parametrize(
    ("queue", "metric"),
    [
        ("JobQueue", "ApproximateNumberOfMessagesVisible"),
        ("JobQueue", "ApproximateNumberOfMessagesNotVisible"),
        ("JobQueue", "ApproximateAgeOfOldestMessage"),
        ("JobDeadLetterQueue", "ApproximateNumberOfMessagesVisible"),
    ],
)
def test_dashboard_plots_the_queues(queue: str, metric: str) -> None:
    assert any(
        p["namespace"] == "AWS/SQS"
        and p["name"] == metric
        and p["dimensions"] == {"QueueName": physical(f"{queue}.QueueName")}
        for p in PLOTTED
    )


@pytest.mark.parametrize(
    ("metric", "stat"),
    [("Errors", "Sum"), ("Throttles", "Sum"), ("Duration", "p95"), ("ConcurrentExecutions", "Maximum")],
)
def test_dashboard_plots_each_function(metric: str, stat: str) -> None:
    functions = {
        p["dimensions"]["FunctionName"]
        for p in PLOTTED
        if p["namespace"] == "AWS/Lambda" and p["name"] == metric and p["stat"] == stat
    }
    assert functions == {physical(f) for f in FUNCTIONS}


def test_the_dashboard_names_the_stream_function_only_when_the_stack_has_one() -> None:
    assert BODY_VARIABLES == {
        "IndexerFunctionName": {"Fn::If": ["HasTravelTableStream", {"Ref": "IndexerFunction"}, "(no stream function)"]},
        # Bedrock's own metrics are where the worker calls it
        "BedrockMetricsRegion": {"Fn::If": ["HasBedrockRegion", {"Ref": "BedrockRegion"}, {"Ref": "AWS::Region"}]},
    }
    assert RESOURCES["IndexerFunction"]["Condition"] == "HasTravelTableStream"


def test_every_metric_widget_names_its_region_and_the_layout_fits() -> None:
    cells: set[tuple[int, int]] = set()
    for widget in WIDGETS:
        if widget["type"] == "metric" and widget["properties"]["title"].startswith("Bedrock"):
            assert widget["properties"]["region"] == "us-west-2"  # BedrockMetricsRegion, as substituted above
            own = [row for row in widget["properties"]["metrics"] if row[0] == NAMESPACE]
            assert own and all(row[-1]["region"] == physical("AWS::Region") for row in own)
        elif widget["type"] == "metric":
            assert widget["properties"]["region"] == physical("AWS::Region")
        assert widget["x"] + widget["width"] <= 24
        area = {
            (x, y)
            for x in range(widget["x"], widget["x"] + widget["width"])
            for y in range(widget["y"], widget["y"] + widget["height"])
        }
        assert not cells & area, f"widget {widget.get('properties', {}).get('title')} overlaps another"
        cells |= area


def test_dashboard_has_a_how_to_read_it_line_and_the_alarms() -> None:
    texts = [w["properties"]["markdown"] for w in WIDGETS if w["type"] == "text"]
    alarms = [w["properties"]["alarms"] for w in WIDGETS if w["type"] == "alarm"]

    assert any("How to read this" in text for text in texts)
    assert len(alarms) == 1
    assert sorted(alarms[0]) == sorted(physical(f"{alarm}.Arn") for alarm in ALARMS)  # every alarm of the stack
    assert set(ALARMS) >= {
        "DeadLetterQueueNotEmptyAlarm",
        "TaskDeadLetterQueueNotEmptyAlarm",
        "OldestJobAgeAlarm",
        "WorkerErrorRateAlarm",
        "ModelUnavailableAlarm",
        "ModelLegacyAlarm",
    }


# ------------------------------------------------------------------ alarms
def test_every_alarm_has_a_row_and_a_runbook_entry_in_the_operations_docs() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    rows = set(re.findall(r"^\| `(\w+Alarm)` \|", docs, re.MULTILINE))
    entries = set(re.findall(r"^### (\w+Alarm)$", docs, re.MULTILINE))

    assert rows == entries == set(ALARMS)


NOTIFY = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}


@pytest.mark.parametrize("alarm", ALARMS)
def test_alarms_notify_the_optional_topic_only_when_it_is_set(alarm: str) -> None:
    properties = RESOURCES[alarm]["Properties"]

    assert RESOURCES[alarm]["Type"] == "AWS::CloudWatch::Alarm"
    assert properties["AlarmActions"] == NOTIFY
    assert properties["OKActions"] == NOTIFY
    assert PARAMETERS["AlarmTopicArn"]["Default"] == ""
    assert TEMPLATE["Conditions"]["HasAlarmTopic"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]}
    assert properties["AlarmDescription"]


def test_dead_letter_alarm_fires_on_the_first_message() -> None:
    properties = RESOURCES["DeadLetterQueueNotEmptyAlarm"]["Properties"]

    assert (properties["Namespace"], properties["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert properties["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["JobDeadLetterQueue", "QueueName"]}}
    ]
    assert (properties["Statistic"], properties["Period"], properties["EvaluationPeriods"]) == ("Maximum", 60, 1)
    assert (properties["ComparisonOperator"], properties["Threshold"]) == ("GreaterThanThreshold", 0)
    assert properties["TreatMissingData"] == "notBreaching"


def test_oldest_job_age_alarm_uses_the_parameter() -> None:
    properties = RESOURCES["OldestJobAgeAlarm"]["Properties"]

    assert (properties["Namespace"], properties["MetricName"]) == ("AWS/SQS", "ApproximateAgeOfOldestMessage")
    assert properties["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["JobQueue", "QueueName"]}}]
    assert properties["Threshold"] == {"Ref": "OldestMessageAlarmSeconds"}
    assert PARAMETERS["OldestMessageAlarmSeconds"]["Default"] == 3600
    assert (properties["Statistic"], properties["Period"]) == ("Maximum", 300)
    assert (properties["EvaluationPeriods"], properties["DatapointsToAlarm"]) == (1, 1)
    assert properties["ComparisonOperator"] == "GreaterThanThreshold"


def test_model_unavailable_alarm_fires_on_the_first_job_the_model_refuses_in_five_minutes() -> None:
    properties = RESOURCES["ModelUnavailableAlarm"]["Properties"]

    # the metric exactly as the worker's Powertools metrics emit it: the namespace and the service dimension
    assert (properties["Namespace"], properties["MetricName"]) == (NAMESPACE, "ModelUnavailable")
    assert properties["Dimensions"] == [{"Name": "service", "Value": {"Ref": "AWS::StackName"}}]
    assert (properties["Statistic"], properties["Period"], properties["EvaluationPeriods"]) == ("Sum", 300, 1)
    assert (properties["ComparisonOperator"], properties["Threshold"]) == ("GreaterThanThreshold", 0)
    assert properties["TreatMissingData"] == "notBreaching"


def test_model_legacy_alarm_holds_the_last_daily_report_for_a_day() -> None:
    properties = RESOURCES["ModelLegacyAlarm"]["Properties"]

    assert (properties["Namespace"], properties["MetricName"]) == (NAMESPACE, "ModelLegacy")
    assert properties["Dimensions"] == [{"Name": "service", "Value": {"Ref": "AWS::StackName"}}]
    assert (properties["Statistic"], properties["Threshold"]) == ("Maximum", 1)
    assert properties["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    # one report a day, on the first hourly sweep after midnight: more than a day of hourly periods, any one of
    # them enough; CloudWatch allows up to 7 days for periods of an hour or more
    assert properties["Period"] == 3600 and 25 <= properties["EvaluationPeriods"] <= 7 * 24
    assert properties["DatapointsToAlarm"] == 1
    assert PARAMETERS["SweepSchedule"]["Default"] == "rate(1 hour)"
    assert properties["TreatMissingData"] == "notBreaching"


@pytest.mark.parametrize("variable", ["BEDROCK_MODEL_ID", "FALLBACK_MODEL_ID", "BEDROCK_REGION", "IMAGE_PROVIDER"])
def test_the_sweep_checks_the_models_the_worker_draws_with(variable: str) -> None:
    worker = RESOURCES["WorkerFunction"]["Properties"]["Environment"]["Variables"]
    sweep = RESOURCES["SweepFunction"]["Properties"]["Environment"]["Variables"]
    assert sweep[variable] == worker[variable]


def test_worker_error_rate_alarm_is_errors_over_invocations_in_percent() -> None:
    properties = RESOURCES["WorkerErrorRateAlarm"]["Properties"]
    queries = {q["Id"]: q for q in properties["Metrics"]}
    returned = [q for q in queries.values() if q.get("ReturnData", True)]

    for query_id, metric in (("errors", "Errors"), ("invocations", "Invocations")):
        stat = queries[query_id]["MetricStat"]
        assert stat["Metric"]["Namespace"] == "AWS/Lambda"
        assert stat["Metric"]["MetricName"] == metric
        assert stat["Metric"]["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "WorkerFunction"}}]
        assert (stat["Period"], stat["Stat"]) == (300, "Sum")
    assert len(returned) == 1
    assert re.sub(r"\s", "", returned[0]["Expression"]) == "IF(invocations>0,100*errors/invocations,0)"
    assert (properties["Threshold"], properties["ComparisonOperator"]) == (5, "GreaterThanThreshold")
    assert (properties["EvaluationPeriods"], properties["DatapointsToAlarm"]) == (3, 3)


# ------------------------------------------------------------------ worker scaling, retries, sweep
def worker_sqs_event() -> dict:
    events = RESOURCES["WorkerFunction"]["Properties"]["Events"]
    (event,) = [e for e in events.values() if e["Type"] == "SQS"]
    return event["Properties"]


def test_worker_concurrency_is_capped_by_the_parameter() -> None:
    properties = worker_sqs_event()

    assert properties["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "WorkerMaxConcurrency"}}
    assert "ReportBatchItemFailures" in properties["FunctionResponseTypes"]
    parameter = PARAMETERS["WorkerMaxConcurrency"]
    assert (parameter["Default"], parameter["MinValue"], parameter["MaxValue"]) == (5, 2, 1000)


def policy_statements(function: str) -> list[dict]:
    """The function's unconditional inline statements (the Bedrock ones depend on the model id)."""
    return [
        statement
        for policy in RESOURCES[function]["Properties"]["Policies"]
        if isinstance(policy, dict) and "Statement" in policy
        for statement in policy["Statement"]
        if "Fn::If" not in statement
    ]


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def test_worker_may_delay_a_retry_on_the_job_queue() -> None:
    assert any(
        statement["Effect"] == "Allow"
        and "sqs:ChangeMessageVisibility" in as_list(statement["Action"])
        and as_list(statement["Resource"]) == [{"Fn::GetAtt": ["JobQueue", "Arn"]}]
        for statement in policy_statements("WorkerFunction")
    )


def test_job_queue_visibility_covers_six_worker_timeouts() -> None:
    timeout = RESOURCES["WorkerFunction"]["Properties"].get("Timeout", TEMPLATE["Globals"]["Function"]["Timeout"])
    assert RESOURCES["JobQueue"]["Properties"]["VisibilityTimeout"] >= 6 * timeout


@pytest.mark.parametrize(
    ("function", "variable", "parameter"),
    [
        ("WorkerFunction", "MAX_RECEIVE_COUNT", "MaxReceiveCount"),
        ("WorkerFunction", "BEDROCK_REQUESTS_PER_MINUTE", "BedrockRequestsPerMinute"),
        ("SweepFunction", "STUCK_AFTER_MINUTES", "StuckJobMinutes"),
    ],
)
def test_functions_get_their_operations_settings(function: str, variable: str, parameter: str) -> None:
    variables = RESOURCES[function]["Properties"]["Environment"]["Variables"]
    assert variables[variable] == {"Ref": parameter}


def test_the_default_stack_governs_its_bedrock_calls() -> None:
    """The rate governor is on unless an operator turns it off with 0 (docs/operations.md, Throughput)."""
    parameter = PARAMETERS["BedrockRequestsPerMinute"]
    assert (parameter["Default"], parameter["MinValue"]) == (60, 0)


def test_stuck_job_minutes_has_a_floor() -> None:
    assert (PARAMETERS["StuckJobMinutes"]["Default"], PARAMETERS["StuckJobMinutes"]["MinValue"]) == (60, 20)


# ------------------------------------------------------------------ outputs
def test_outputs_give_ops_what_it_reads_and_the_dashboard_url() -> None:
    outputs = TEMPLATE["Outputs"]

    assert set(ops.REDRIVE_OUTPUTS) <= set(outputs)
    assert outputs["JobQueueArn"]["Value"] == {"Fn::GetAtt": ["JobQueue", "Arn"]}
    assert outputs["DeadLetterQueueArn"]["Value"] == {"Fn::GetAtt": ["JobDeadLetterQueue", "Arn"]}
    assert outputs["DashboardUrl"]["Value"] == {
        "Fn::Sub": "https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home"
        "?region=${AWS::Region}#dashboards:name=${Dashboard}"
    }
