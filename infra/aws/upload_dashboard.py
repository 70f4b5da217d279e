#!/usr/bin/env python3
"""Uploads dashboard/dist to the stack's dashboard bucket, then invalidates CloudFront's copy.

Usage: infra/aws/upload_dashboard.py [sam deploy options]   (run by `make deploy` after sam deploy)

The bucket and distribution come from the stack's outputs (DashboardBucketName, DistributionId).
Cache-Control is set as `llmtrack serve` sets it: Vite's hashed files under assets/ never change
(a year, immutable), everything else (index.html) is revalidated on each load (no-cache). Files of
earlier builds are left in place, so a page loaded before the deploy can still fetch its chunks.
"""

from __future__ import annotations

import mimetypes
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import boto3  # noqa: E402

import cfn  # noqa: E402
import deployconfig  # noqa: E402

DIST = cfn.ROOT / "dashboard" / "dist"


def cache_control(key: str) -> str:
    return "public, max-age=31536000, immutable" if key.startswith("assets/") else "no-cache"


def content_type(key: str) -> str:
    kind, _ = mimetypes.guess_type(key)
    if key.endswith(".js") or key.endswith(".mjs"):
        kind = "text/javascript"
    kind = kind or "application/octet-stream"
    return f"{kind}; charset=utf-8" if kind.startswith("text/") or kind in ("application/json", "image/svg+xml") else kind


def main(argv: list[str]) -> int:
    if not (DIST / "index.html").is_file():
        print("upload: dashboard/dist/index.html is missing: run `make dashboard` first", file=sys.stderr)
        return 1
    cfg = deployconfig.read(argv)
    if not cfg.stack_name:
        print("upload: no stack name: set stack_name in samconfig.toml or pass --stack-name", file=sys.stderr)
        return 1
    session = boto3.Session(profile_name=cfg.profile, region_name=cfg.region)
    [stack] = session.client("cloudformation").describe_stacks(StackName=cfg.stack_name)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    bucket, distribution = outputs["DashboardBucketName"], outputs["DistributionId"]
    s3 = session.client("s3")
    files = sorted(p for p in DIST.rglob("*") if p.is_file())
    # Assets first, index.html last: a page never points at a file not yet uploaded.
    files.sort(key=lambda p: p.name == "index.html")
    for path in files:
        key = path.relative_to(DIST).as_posix()
        s3.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": content_type(key), "CacheControl": cache_control(key)})
    session.client("cloudfront").create_invalidation(
        DistributionId=distribution,
        InvalidationBatch={"Paths": {"Quantity": 1, "Items": ["/*"]}, "CallerReference": str(time.time())},
    )
    print(f"upload: {len(files)} files to s3://{bucket}; CloudFront {distribution} invalidated; dashboard at {outputs.get('DashboardUrl')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
