"""The monthly AWS bill of an LLMtrack stack at 1, 10 and 100 million events a month.

Computed from measured figures (docs/cost-inputs.json, written by the DynamoDB benchmark; the
query benchmark's rollup rows; the template's memory sizes and alarm count) and AWS's list
prices (us-east-1, on-demand, without free tiers). What is not measured is an assumption, named
in ASSUMPTIONS and printed with the result. docs/COST.md holds the output between its markers:

    python infra/aws/cost.py --write      # rewrite the tables in docs/COST.md
    python infra/aws/cost.py              # print them

A test (infra/aws/tests/test_cost.py) fails when docs/COST.md is not what the script computes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cfn  # noqa: E402

INPUTS = cfn.ROOT / "docs" / "cost-inputs.json"
COST_MD = cfn.ROOT / "docs" / "COST.md"
BEGIN = "<!-- cost.py: begin -->"
END = "<!-- cost.py: end -->"

# AWS list prices, us-east-1, checked 2026-12-02 on each service's pricing page.
PRICES = {
    "lambda_gb_s_arm64": 0.0000133334,  # aws.amazon.com/lambda/pricing
    "lambda_request": 0.20 / 1e6,
    "http_api_request": 1.00 / 1e6,  # aws.amazon.com/api-gateway/pricing (first 300 million)
    "dynamodb_wru": 0.625 / 1e6,  # aws.amazon.com/dynamodb/pricing/on-demand
    "dynamodb_rru": 0.125 / 1e6,
    "dynamodb_gb_month": 0.25,
    "dynamodb_pitr_gb_month": 0.20,
    "cloudfront_https_request": 0.0100 / 10_000,  # aws.amazon.com/cloudfront/pricing (NA/EU)
    "cloudfront_gb_out": 0.085,
    "logs_gb_ingested": 0.50,  # aws.amazon.com/cloudwatch/pricing
    "logs_gb_month": 0.03,
    "alarm_month": 0.10,
    "secret_month": 0.40,  # aws.amazon.com/secrets-manager/pricing
    "kms_key_month": 1.00,  # aws.amazon.com/kms/pricing (requests: $0.03 per 10,000)
    "kms_request": 0.03 / 10_000,
    "ses_email": 0.10 / 1000,  # aws.amazon.com/ses/pricing
    "s3_gb_month": 0.023,
}

# What no benchmark here can measure, with the value used and why.
ASSUMPTIONS = {
    "dynamodb_round_trip_ms": (
        6.0,
        "one DynamoDB request from Lambda in the same region (AWS: single-digit milliseconds)",
    ),
    "lambda_full_vcpu_mb": (
        1769,
        "Lambda gives one full vCPU at 1,769 MB and a proportional share below it",
    ),
    "retention_days": (90, "the Pro plan's history (events expire by TTL after it)"),
    "dynamodb_item_overhead_bytes": (100, "DynamoDB's storage overhead per item"),
    "rollup_item_bytes": (
        1024,
        "upper bound: every rollup write was sized at one unit (under 1 KiB)",
    ),
    "log_bytes_per_invocation": (
        1200,
        "Lambda's START/END/REPORT lines in JSON format plus one request line",
    ),
    "log_retention_months": (1, "the template's default LogRetentionDays is 30"),
    "api_response_bytes": (20_000, "a dashboard API answer, compressed"),
    "app_bytes_per_session": (85_000, "the whole dashboard app, gzipped (docs/PERFORMANCE.md)"),
    "views_per_session": (5, "dashboard views in one visit (the app is loaded once)"),
    "evaluator_ms": (300, "the alert evaluator's run each minute, at 512 MB, per workspace"),
    "workspaces": (3, "workspaces in the stack (the evaluator's work scales with them)"),
    "emails": (100, "report, alert and sign-in emails a month"),
}

# Round trips of one ingest invocation, from the DynamoDB adapter (shared/src/adapters/dynamodb/
# ingest.rs): look for stale batches, reserve quota, put the batch marker, the events (32 at a
# time), the total rollups and the delta, then the marker and refund.
FIXED_ROUND_TRIPS = 6
EVENT_CONCURRENCY = 32
# A compaction run (at most once a minute per workspace): lock, read the deltas, write the
# rollups (in parallel), delete the lock.
COMPACTION_ROUND_TRIPS = 4
# Requests of one dashboard view (the overview: summary, series by model, breakdown by feature)
# and the rollup rows they read, from the query benchmark (docs/PERFORMANCE.md).
VIEW_REQUESTS = 3
VIEW_ROLLUP_ROWS = 720 + 4314 + 3595
# DynamoDB Query reads at most 1 MB a page: pages per view request.
VIEW_PAGES_PER_REQUEST = 2
# CPU time of the slowest of those three on SQLite (decode of rollups and sketches), a stand-in
# for the query function's CPU per request (10 million events, p50, docs/PERFORMANCE.md).
VIEW_CPU_MS_PER_REQUEST = 13.6

# Dashboard views a month at each volume (more events, more people looking).
DASHBOARD_VIEWS = {1_000_000: 1_000, 10_000_000: 3_000, 100_000_000: 10_000}

# What the hosted competitors charge per event (their list prices).
# Langfuse Cloud, Core plan: $29 a month with 100k units, then $8 per 100k to 1M, $7 to 10M,
# $6.50 to 50M, $6 beyond (langfuse.com/pricing, as summarised on usagepricing.com, 2026-06-09).
LANGFUSE = (29.0, 100_000, [(1_000_000, 8.0e-5), (10_000_000, 7.0e-5), (50_000_000, 6.5e-5), (math.inf, 6.0e-5)])
# Helicone, per logged request (packages/pricing/tiers.ts in Helicone/helicone, 2025-12-10
# tiers), storage per GB not included.
HELICONE = [
    (10_000, 0.0),
    (30_000, 0.0007),
    (90_000, 0.00035),
    (250_000, 0.000175),
    (800_000, 0.0000875),
    (2_500_000, 0.00004375),
    (math.inf, 0.00002),
]


def a(name: str) -> float:
    return ASSUMPTIONS[name][0]


@dataclass
class Line:
    service: str
    what: str
    usd: float


def memory_mb(template: dict, binary: str) -> int:
    default = template["Globals"]["Function"].get("MemorySize", 128)
    for f in cfn.functions(template).values():
        if f["Metadata"]["BuildProperties"]["Binary"] == binary:
            return f.get("Properties", {}).get("MemorySize", default)
    raise KeyError(binary)


def alarm_count(template: dict) -> int:
    return sum(1 for r in template["Resources"].values() if r.get("Type") == "AWS::CloudWatch::Alarm")


def cpu_stretch(mb: int) -> float:
    """How much longer CPU-bound work takes at `mb` than on a full core."""
    return max(1.0, a("lambda_full_vcpu_mb") / mb)


def bill(events: int, profile: dict, template: dict) -> list[Line]:
    batch = profile["batch"]
    batches = events / batch
    rt = a("dynamodb_round_trip_ms")

    # Ingest: one invocation per batch.
    ingest_mb = memory_mb(template, "ingest")
    round_trips = FIXED_ROUND_TRIPS + math.ceil(batch / EVENT_CONCURRENCY)
    round_trips += COMPACTION_ROUND_TRIPS / profile["batches_per_compaction"]
    ingest_ms = round_trips * rt + profile["cpu_ms_per_batch"] * cpu_stretch(ingest_mb)
    ingest_gb_s = batches * ingest_ms / 1000 * ingest_mb / 1024

    # Dashboard: each view is VIEW_REQUESTS API requests through CloudFront to the query function.
    views = DASHBOARD_VIEWS[events]
    query_mb = memory_mb(template, "query")
    query_requests = views * VIEW_REQUESTS
    query_ms = VIEW_PAGES_PER_REQUEST * rt + VIEW_CPU_MS_PER_REQUEST * cpu_stretch(query_mb)
    query_gb_s = query_requests * query_ms / 1000 * query_mb / 1024
    rru = views * math.ceil(VIEW_ROLLUP_ROWS * a("rollup_item_bytes") / 4096) * 0.5
    sessions = views / a("views_per_session")

    # The alert evaluator, every minute.
    evaluator_mb = memory_mb(template, "alerts-evaluator")
    evaluator_gb_s = 43_200 * a("workspaces") * a("evaluator_ms") / 1000 * evaluator_mb / 1024

    stored_gb = events * a("retention_days") / 30 * (profile["event_item_bytes"] + a("dynamodb_item_overhead_bytes")) / 1e9
    invocations = batches + query_requests + 43_200
    log_gb = invocations * a("log_bytes_per_invocation") / 1e9

    p = PRICES
    return [
        Line("Lambda", f"ingest: {batches:,.0f} invocations of {ingest_ms:.0f} ms at {ingest_mb} MB", batches * p["lambda_request"] + ingest_gb_s * p["lambda_gb_s_arm64"]),
        Line("Lambda", f"query: {query_requests:,.0f} requests of {query_ms:.0f} ms at {query_mb} MB", query_requests * p["lambda_request"] + query_gb_s * p["lambda_gb_s_arm64"]),
        Line("Lambda", f"alert evaluator: 43,200 runs at {evaluator_mb} MB", 43_200 * p["lambda_request"] + evaluator_gb_s * p["lambda_gb_s_arm64"]),
        Line("API Gateway", f"{batches + query_requests:,.0f} HTTP API requests", (batches + query_requests) * p["http_api_request"]),
        Line("DynamoDB", f"writes: {profile['wcu_per_event']:.3f} units an event", events * profile["wcu_per_event"] * p["dynamodb_wru"]),
        Line("DynamoDB", f"reads: {rru:,.0f} read units for {views:,} dashboard views", rru * p["dynamodb_rru"]),
        Line("DynamoDB", f"storage and backups: {stored_gb:.1f} GB ({a('retention_days'):.0f} days of events)", stored_gb * (p["dynamodb_gb_month"] + p["dynamodb_pitr_gb_month"])),
        Line("CloudFront", f"{query_requests + sessions * 10:,.0f} requests, dashboard and API answers", (query_requests + sessions * 10) * p["cloudfront_https_request"] + (query_requests * a("api_response_bytes") + sessions * a("app_bytes_per_session")) / 1e9 * p["cloudfront_gb_out"]),
        Line("CloudWatch", f"{log_gb:.2f} GB of logs; {alarm_count(template)} alarms", log_gb * (p["logs_gb_ingested"] + a("log_retention_months") * p["logs_gb_month"]) + alarm_count(template) * p["alarm_month"]),
        Line("Secrets Manager", "2 secrets (Stripe, alert signing key)", 2 * p["secret_month"]),
        # One Decrypt per provider connection and import: 24 hourly runs at most, a few connections.
        Line("KMS", "1 key (provider admin keys); about 2,000 requests", p["kms_key_month"] + 2_000 * p["kms_request"]),
        Line("SES, S3", f"{a('emails'):.0f} emails; report and export files", a("emails") * p["ses_email"] + 0.1 * p["s3_gb_month"]),
    ]


def langfuse(events: int) -> float:
    base, included, tiers = LANGFUSE
    usd, done = base, included
    for upto, rate in tiers:
        if events <= done:
            break
        n = min(events, upto) - done
        usd += n * rate
        done += n
    return usd


def helicone(events: int) -> float:
    usd, done = 0.0, 0
    for upto, rate in HELICONE:
        if events <= done:
            break
        n = min(events, upto) - done
        usd += n * rate
        done += n
    return usd


def render(inputs: dict, template: dict) -> str:
    out = []
    summary = []
    for profile in inputs["profiles"]:
        events = profile["monthly_events"]
        lines = bill(events, profile, template)
        total = sum(line.usd for line in lines)
        summary.append((events, profile, total))
        out.append(f"### {events / 1e6:.0f} million events a month\n")
        out.append(
            f"Clients send batches of {profile['batch']} (measured: {profile['wcu_per_event']:.3f} write units an event, "
            f"{profile['cpu_ms_per_batch']:.2f} ms of CPU a batch, event items of {profile['event_item_bytes']:.0f} bytes); "
            f"{DASHBOARD_VIEWS[events]:,} dashboard views.\n"
        )
        out.append("| service | what | $ a month |")
        out.append("|---|---|---:|")
        for line in lines:
            out.append(f"| {line.service} | {line.what} | {line.usd:,.2f} |")
        out.append(f"| **total** | | **{total:,.2f}** |\n")
    out.append("### Per million events, against the hosted products\n")
    out.append("| events a month | LLMtrack on AWS (whole bill) | per million | Langfuse Cloud (Core) per million | Helicone per million (requests only) |")
    out.append("|---|---:|---:|---:|---:|")
    for events, _, total in summary:
        m = events / 1e6
        out.append(
            f"| {events:,} | ${total:,.2f} | ${total / m:,.2f} | ${langfuse(events) / m:,.2f} | ${helicone(events) / m:,.2f} |"
        )
    out.append("")
    out.append("Assumptions (not measured here):\n")
    for name, (value, why) in ASSUMPTIONS.items():
        out.append(f"- `{name}` = {value:,}: {why}")
    out.append("")
    out.append(f"Measured inputs: `docs/cost-inputs.json` ({inputs['measured_on'][:10]}, `{inputs['command']}`).")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=Path, default=INPUTS)
    parser.add_argument("--write", action="store_true", help=f"rewrite the block in {COST_MD.name}")
    args = parser.parse_args()
    text = render(json.loads(args.inputs.read_text()), cfn.load())
    if not args.write:
        print(text)
        return
    doc = COST_MD.read_text()
    start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
    COST_MD.write_text(doc[:start] + "\n" + text + "\n" + doc[end:])
    print(f"wrote {COST_MD}")


if __name__ == "__main__":
    main()
