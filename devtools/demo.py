"""The main job end to end on an embedded AWS: list missing images, queue them all, generate, report.

    python -m devtools.demo [--out out/images]

Everything runs against moto on 127.0.0.1 with resources from template.yaml; the worker uses the
local renderer (Pillow) instead of Amazon Bedrock. Each run starts from a fresh embedded AWS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import boto3

from devtools.embedded_aws import REGION, embedded_aws, use_function_environment
from devtools.lambda_runtime import LambdaContext, drain_queue, http_event, load_handler
from devtools.seed import ALICE, BOB, put_items, sample_items
from devtools.streams import LocalStream


def _call(api: object, event: dict) -> dict:
    response = api.lambda_handler(event, LambdaContext())  # type: ignore[attr-defined]
    body = json.loads(response["body"])
    if response["statusCode"] >= 400:
        raise SystemExit(f"API answered {response['statusCode']}: {body}")
    return body


def run(out_dir: Path) -> dict:
    with embedded_aws() as stack:
        put_items(stack.physical("TravelTable"), sample_items(), region=REGION)
        quiet = {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
        # the host app's writes reach the indexer through the table's stream, as in AWS
        use_function_environment(stack, "indexer", **quiet)
        indexed = LocalStream(stack).deliver(load_handler("indexer"))
        print(f"indexer: {indexed} stream records from the travel table")
        use_function_environment(stack, "api", **quiet)
        api = load_handler("api")
        use_function_environment(stack, "worker", IMAGE_PROVIDER="local", **quiet)
        worker = load_handler("worker")

        report: dict = {"users": {}}
        for user in (ALICE, BOB):
            listed = _call(api, http_event("api-list-missing-images.json", sub=user))
            queued = _call(api, http_event("api-queue-all.json", sub=user))
            report["users"][user] = {"listing": listed, "queue": queued}
            print(f"{user}: {listed['count']} records missing images")
            for kind in ("trips", "segments", "reservations"):
                for item in listed[kind]:
                    context = item.get("tripTitle") or ""
                    label = item.get("title") or item.get("name")
                    print(f"  {kind[:-1]:<11} {label:<22} {context}")

        drained = drain_queue(stack.physical("JobQueue"), stack.arns["JobQueue"], worker, region=REGION)

        s3 = boto3.client("s3", region_name=REGION)
        bucket = stack.physical("ImageBucket")
        for user in (ALICE, BOB):  # a second run replaces the first run's images, and only those
            shutil.rmtree(out_dir / user, ignore_errors=True)
        written = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                target = out_dir / obj["Key"].removeprefix("images/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
                written.append(target)

        for user in (ALICE, BOB):
            batch_id = report["users"][user]["queue"]["batchId"]
            progress = _call(
                api, http_event("api-batch-progress.json", sub=user, path_parameters={"batchId": batch_id})
            )
            report["users"][user]["progress"] = progress
            remaining = _call(api, http_event("api-list-missing-images.json", sub=user))["count"]
            report["users"][user]["remaining"] = remaining

        found = sum(u["listing"]["count"] for u in report["users"].values())
        queued = sum(sum(t["queued"] for t in u["queue"]["summary"].values()) for u in report["users"].values())
        generated = sum(u["progress"]["succeeded"] for u in report["users"].values())
        failed = sum(u["progress"]["failed"] for u in report["users"].values()) + drained["failed"]
        report.update(found=found, queued=queued, generated=generated, failed=failed, images=[str(p) for p in written])

        print()
        print(f"found {found} · queued {queued} · generated {generated} · failed {failed}")
        print(f"still missing after the run: {sum(u['remaining'] for u in report['users'].values())}")
        print(f"{len(written)} PNG files written under {out_dir}/:")
        for path in sorted(written):
            print(f"  {path}")
        return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("DEMO_OUT", "out/images")))
    args = parser.parse_args()
    report = run(args.out)
    if report["failed"] or report["generated"] != report["queued"]:
        raise SystemExit("some jobs did not produce an image; see the log above")


if __name__ == "__main__":
    main()
