"""template.yaml against the Rust code: every Lambda binary is deployed, API Gateway routes each
route to the function whose router serves it (and nothing else), every environment variable a
function reads is set, each function has its log group and alarms, and CloudFront sends every API
path to the API with the dashboard's headers matching `llmtrack serve`'s.

The code is read from whole crates (infra/aws/rustscan.py), never from fixed files, so code may
move between files and modules without this test noticing anything but a real mismatch."""

from __future__ import annotations

import fnmatch
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cfn  # noqa: E402
from rustscan import Code, mask  # noqa: E402

ROOT = cfn.ROOT

# Variables the code may read that the template deliberately does not set, and why.
NOT_SET_ON_LAMBDA = {
    "AWS_LAMBDA_FUNCTION_NAME": "set by the Lambda runtime itself",
    "AWS_ENDPOINT_URL_S3": "tests only: points the S3 client at moto",
    "TRUSTED_PROXIES": "the local server's reverse proxies; on Lambda the client address comes from API Gateway",
    "STRIPE_API_BASE": "tests only: points the Stripe client at a local fake",
}


@pytest.fixture(scope="module")
def code() -> Code:
    return Code(ROOT)


@pytest.fixture(scope="module")
def template() -> dict:
    return cfn.load()


def deployed(template: dict) -> dict[str, str]:
    """Binary name -> the function's logical id."""
    out = {}
    for logical_id, f in cfn.functions(template).items():
        binary = f.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
        assert binary, f"{logical_id} has no Metadata.BuildProperties.Binary"
        out[binary] = logical_id
    return out


def lambda_binaries(code: Code) -> list[str]:
    """Binaries whose main runs under the Lambda runtime."""
    out = []
    for pkg in code.packages.values():
        for name, main in pkg.bins.items():
            if re.search(r"\blambda(_http|_runtime)?::", mask(main.read_text())):
                out.append(name)
    return sorted(out)


def template_routes(template: dict, logical_id: str) -> set[tuple[str, str]]:
    events = template["Resources"][logical_id].get("Properties", {}).get("Events", {}) or {}
    return {
        (e["Properties"]["Method"].upper(), e["Properties"]["Path"])
        for e in events.values()
        if e.get("Type") == "HttpApi"
    }


def test_every_lambda_binary_is_deployed(code, template):
    binaries = lambda_binaries(code)
    assert len(binaries) >= 10, f"too few Lambda binaries found: {binaries}"
    missing = sorted(set(binaries) - set(deployed(template)))
    assert not missing, f"Lambda binaries the template does not deploy: {missing}"
    unknown = sorted(set(deployed(template)) - set(binaries))
    assert not unknown, f"the template deploys binaries the code does not have: {unknown}"


def test_routes_go_to_the_function_that_serves_them(code, template):
    problems = []
    served_anywhere = set()
    for binary, logical_id in sorted(deployed(template).items()):
        routes, _, _ = code.reach(binary)
        served_anywhere |= routes
        routed = template_routes(template, logical_id)
        for method, path in sorted(routes - routed):
            problems.append(f"{logical_id} ({binary}) serves {method} {path}, but API Gateway does not route it there")
        for method, path in sorted(routed - routes):
            problems.append(f"API Gateway routes {method} {path} to {logical_id} ({binary}), whose router does not serve it")
    assert served_anywhere, "no route found in the code: the scanner is broken"
    assert not problems, "\n".join(problems)


def test_every_variable_a_function_reads_is_set(code, template):
    problems = []
    for binary, logical_id in sorted(deployed(template).items()):
        _, reads, _ = code.reach(binary)
        env = cfn.environment(template, logical_id)
        for name in sorted(reads - set(env) - set(NOT_SET_ON_LAMBDA)):
            problems.append(f"{logical_id} ({binary}) reads {name}, which its Environment does not set")
    assert not problems, "\n".join(problems)


def test_the_scanner_sees_configuration_reads(code):
    # A guard against the scanner going blind: these reads are the functions' configuration.
    _, reads, _ = code.reach("billing")
    assert {"TABLE_NAME", "PUBLIC_URL", "MAIL_FROM", "STRIPE_SECRET_KEY"} <= reads, reads


def log_group_of(template: dict, logical_id: str) -> dict:
    ref = template["Resources"][logical_id]["Properties"].get("LoggingConfig", {}).get("LogGroup", {})
    assert isinstance(ref, dict) and "Ref" in ref, f"{logical_id} has no LoggingConfig.LogGroup: !Ref ..."
    return template["Resources"][ref["Ref"]]


def test_each_function_logs_to_its_log_group_with_the_retention_parameter(template):
    for logical_id, f in cfn.functions(template).items():
        group = log_group_of(template, logical_id)
        assert group["Type"] == "AWS::Logs::LogGroup"
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, logical_id
        name = f["Properties"]["FunctionName"]["Fn::Sub"]
        assert group["Properties"]["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/{name}"}, logical_id


def alarms(template: dict) -> list[dict]:
    return [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]


def test_each_function_has_error_and_throttle_alarms(template):
    for logical_id in cfn.functions(template):
        for metric in ("Errors", "Throttles"):
            found = [
                a for a in alarms(template)
                if a.get("Namespace") == "AWS/Lambda" and a.get("MetricName") == metric
                and {"Name": "FunctionName", "Value": {"Ref": logical_id}} in a.get("Dimensions", [])
            ]
            assert found, f"{logical_id} has no {metric} alarm"


def dead_letter_queues(template: dict) -> list[str]:
    """The SQS queues SAM creates for events' DeadLetterConfig, and the template's own queues."""
    out = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::SQS::Queue"]
    for logical_id, f in cfn.functions(template).items():
        for event_id, e in (f["Properties"].get("Events") or {}).items():
            dlq = e.get("Properties", {}).get("DeadLetterConfig")
            if dlq and dlq.get("Type") == "SQS":
                out.append(f"{logical_id}{event_id}Queue")
    return out


def test_each_dead_letter_queue_has_a_depth_alarm(template):
    queues = dead_letter_queues(template)
    assert queues, "no dead-letter queue found"
    for q in queues:
        found = [
            a for a in alarms(template)
            if a.get("Namespace") == "AWS/SQS" and a.get("MetricName") == "ApproximateNumberOfMessagesVisible"
            and {"Name": "QueueName", "Value": {"Fn::GetAtt": [q, "QueueName"]}} in a.get("Dimensions", [])
        ]
        assert found, f"dead-letter queue {q} has no depth alarm"


def test_alarms_notify_the_topic_only_when_it_is_set(template):
    for a in alarms(template):
        assert a.get("AlarmActions") == {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}, a


def distribution(template: dict) -> dict:
    [d] = [r for r in template["Resources"].values() if r["Type"] == "AWS::CloudFront::Distribution"]
    return d["Properties"]["DistributionConfig"]


def test_cloudfront_sends_every_api_path_to_the_api(code, template):
    config = distribution(template)
    api_patterns = [b["PathPattern"] for b in config["CacheBehaviors"] if b["TargetOriginId"] == "api"]
    for b in config["CacheBehaviors"]:
        if b["TargetOriginId"] == "api":
            # Only the viewer's address is added; the SPA fallback must not rewrite API paths.
            assert b["FunctionAssociations"] == [
                {
                    "EventType": "viewer-request",
                    "FunctionARN": {"Fn::GetAtt": ["ViewerAddressFunction", "FunctionMetadata.FunctionARN"]},
                }
            ], b["PathPattern"]
            assert "DELETE" in b["AllowedMethods"] and "POST" in b["AllowedMethods"]
    for binary, logical_id in deployed(template).items():
        for method, path in template_routes(template, logical_id):
            assert any(fnmatch.fnmatchcase(path, p) for p in api_patterns), (
                f"{method} {path} would be served by the dashboard's bucket: add a CloudFront behaviour for it"
            )
    # The paths `llmtrack serve` keeps for the API (infra's `is_api`), on AWS too.
    for path in ("/v1", "/v1/x", "/healthz", "/otlp/v1/traces"):
        assert any(fnmatch.fnmatchcase(path, p) for p in api_patterns), path


def rust_const(name: str) -> str:
    files = [*(ROOT / "infra" / "src").rglob("*.rs"), *(ROOT / "shared" / "src").rglob("*.rs")]
    for file in files:
        m = re.search(r"\b%s\s*:\s*&str\s*=\s*\"((?:[^\"\\]|\\.)*)\"" % name, file.read_text())
        if m:
            return m.group(1)
    raise AssertionError(f"{name} not found in infra/src or shared/src")


def test_dashboard_headers_match_llmtrack_serve(template):
    [policy] = [r for r in template["Resources"].values() if r["Type"] == "AWS::CloudFront::ResponseHeadersPolicy"]
    headers = policy["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    assert headers["ContentSecurityPolicy"]["ContentSecurityPolicy"] == rust_const("CONTENT_SECURITY_POLICY")
    assert headers["FrameOptions"]["FrameOption"] == "DENY"
    assert headers["ReferrerPolicy"]["ReferrerPolicy"] == "same-origin"
    assert "ContentTypeOptions" in headers
    assert distribution(template)["DefaultCacheBehavior"]["ResponseHeadersPolicyId"] == {"Ref": "DashboardHeadersPolicy"}


def test_secrets_are_not_stack_parameters(template):
    params = template["Parameters"]
    for name, p in params.items():
        assert not p.get("NoEcho"), f"{name}: secrets come from Secrets Manager, not NoEcho parameters"
    for logical_id in cfn.functions(template):
        env = cfn.environment(template, logical_id)
        for var in ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "ALERT_SIGNING_KEY"):
            if var in env:
                assert "{{resolve:secretsmanager:" in str(env[var]), f"{logical_id}: {var} is not a Secrets Manager reference"


def test_cloudfront_proves_itself_to_every_http_function(code, template):
    """The viewer's address is believed only with the edge secret: CloudFront sends the one the
    HTTP functions hold, under the header name and in the variable the code reads."""
    secret_ref = {"Fn::Sub": "{{resolve:secretsmanager:${EdgeSecret}:SecretString}}"}
    [api] = [o for o in distribution(template)["Origins"] if o["Id"] == "api"]
    assert api["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    headers = {h["HeaderName"].lower(): h["HeaderValue"] for h in api["OriginCustomHeaders"]}
    assert headers == {rust_const("EDGE_HEADER"): secret_ref}
    function = template["Resources"]["ViewerAddressFunction"]["Properties"]["FunctionCode"]
    assert f"request.headers['{rust_const('VIEWER_HEADER')}'] = {{ value: event.viewer.ip }}" in function
    var = rust_const("EDGE_SECRET_VAR")
    for logical_id, f in cfn.functions(template).items():
        serves_http = any(e.get("Type") == "HttpApi" for e in (f["Properties"].get("Events") or {}).values())
        env = cfn.environment(template, logical_id)
        if serves_http:
            assert env.get(var) == secret_ref, f"{logical_id} cannot tell CloudFront's requests from others"
        else:
            assert var not in env, f"{logical_id} serves no HTTP and needs no edge secret"
