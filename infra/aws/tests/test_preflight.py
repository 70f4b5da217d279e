"""The deploy preflight against a real moto server (SES v2, Secrets Manager, CloudFormation):
`make test` starts one and exports MOTO_ENDPOINT (infra/scripts/with-moto); run alone, these tests
start their own."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cfn  # noqa: E402
import preflight  # noqa: E402

REGION = "eu-west-1"
STRIPE_SECRET = {"secret_key": "sk_test_abc123", "webhook_secret": "whsec_def456"}
ALERT_KEY = "k" * 40


@pytest.fixture(scope="session")
def moto_endpoint():
    endpoint = os.environ.get("MOTO_ENDPOINT")
    if endpoint:
        yield endpoint
        return
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    server = subprocess.Popen([str(cfn.ROOT / ".venv/bin/moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    yield endpoint
    server.terminate()
    server.wait()


@pytest.fixture
def aws(moto_endpoint, monkeypatch):
    """A fresh moto account; boto3 (the preflight's too) talks to it."""
    req = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=5)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_REGION", REGION)
    return boto3.Session(region_name=REGION)


def setup_account(aws, *, identities=("example.com",), stripe=STRIPE_SECRET, alert_key=ALERT_KEY):
    ses = aws.client("sesv2")
    for identity in identities:
        ses.create_email_identity(EmailIdentity=identity)
    sm = aws.client("secretsmanager")
    if stripe is not None:
        sm.create_secret(Name="llmtrack/stripe", SecretString=json.dumps(stripe))
    if alert_key is not None:
        sm.create_secret(Name="llmtrack/alert-signing-key", SecretString=alert_key)


GOOD = {
    "PublicUrl": "https://app.example.com",
    "MailFrom": "noreply@example.com",
    "SupportEmail": "support@example.com",
    "AlertSigningKeySecretId": "llmtrack/alert-signing-key",
    "StripeSecretId": "llmtrack/stripe",
    "StripePricePro": "price_pro1",
    "StripePriceTeam": "price_team1",
}


def samconfig(tmp_path: Path, params: dict[str, str], stack_name: str = "llmtrack-test") -> list[str]:
    overrides = " ".join(f'{k}="{v}"' for k, v in params.items())
    path = tmp_path / "samconfig.toml"
    path.write_text(
        'version = 0.1\n[default.deploy.parameters]\n'
        f'stack_name = "{stack_name}"\nregion = "{REGION}"\n'
        f"parameter_overrides = {json.dumps(overrides)}\n"
    )
    return ["--config-file", str(path)]


def problems(argv: list[str]) -> list[str]:
    return preflight.check(argv).problems


def test_a_complete_configuration_passes(aws, tmp_path):
    setup_account(aws)
    report = preflight.check(samconfig(tmp_path, GOOD))
    assert report.problems == []
    assert any("first deploy" in n for n in report.notes)


def test_an_unverified_sender_is_refused(aws, tmp_path):
    setup_account(aws, identities=("other.org",))
    found = problems(samconfig(tmp_path, GOOD))
    assert any(p.startswith("MailFrom noreply@example.com is not verified") for p in found), found
    assert any(p.startswith("SupportEmail support@example.com is not verified") for p in found), found
    assert any("other.org" in p for p in found), "the message lists the identities that are verified"


def test_the_sender_address_alone_may_be_verified(aws, tmp_path):
    setup_account(aws, identities=("noreply@example.com",))
    params = dict(GOOD, SupportEmail="")
    assert problems(samconfig(tmp_path, params)) == []


def test_an_unverified_support_address_is_refused_even_when_the_sender_is_verified(aws, tmp_path):
    # The privacy policy: the support address is published only once it receives mail.
    setup_account(aws, identities=("noreply@example.com",))
    found = problems(samconfig(tmp_path, GOOD))
    assert len(found) == 1 and found[0].startswith("SupportEmail support@example.com is not verified"), found


def test_public_url_must_be_https(aws, tmp_path):
    setup_account(aws)
    for url in ("http://app.example.com", "https://app.example.com/dashboard", "app.example.com"):
        found = problems(samconfig(tmp_path, dict(GOOD, PublicUrl=url)))
        assert any(p.startswith(f"PublicUrl `{url}` is not an https:// origin") for p in found), (url, found)


def test_public_url_must_be_the_distribution(aws, tmp_path):
    setup_account(aws)
    aws.client("cloudformation").create_stack(
        StackName="llmtrack-test",
        TemplateBody=json.dumps({
            "Resources": {"T": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {"DashboardUrl": {"Value": "https://d111111abcdef8.cloudfront.net"}},
        }),
    )
    found = problems(samconfig(tmp_path, GOOD))
    assert any("set PublicUrl=https://d111111abcdef8.cloudfront.net" in p for p in found), found
    assert problems(samconfig(tmp_path, dict(GOOD, PublicUrl="https://d111111abcdef8.cloudfront.net"))) == []


def test_a_custom_domain_needs_a_us_east_1_certificate_and_a_matching_public_url(aws, tmp_path):
    setup_account(aws)
    cert = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
    ok = dict(GOOD, PublicUrl="", DomainName="app.example.com", CertificateArn=cert)
    assert problems(samconfig(tmp_path, ok)) == []
    found = problems(samconfig(tmp_path, dict(ok, CertificateArn="")))
    assert any("needs CertificateArn" in p for p in found), found
    found = problems(samconfig(tmp_path, dict(ok, CertificateArn=cert.replace("us-east-1", "eu-west-1"))))
    assert any("must be in us-east-1" in p for p in found), found
    found = problems(samconfig(tmp_path, dict(ok, PublicUrl="https://other.example.com")))
    assert any("is not the dashboard's address https://app.example.com" in p for p in found), found


@pytest.mark.parametrize("missing", ["StripeSecretId", "StripePricePro", "StripePriceTeam"])
def test_half_configured_stripe_is_refused(aws, tmp_path, missing):
    setup_account(aws)
    found = problems(samconfig(tmp_path, dict(GOOD, **{missing: ""})))
    assert any(p.startswith("Stripe is half-configured") and missing in p for p in found), found


def test_no_stripe_at_all_is_fine(aws, tmp_path):
    setup_account(aws, stripe=None)
    params = dict(GOOD, StripeSecretId="", StripePricePro="", StripePriceTeam="")
    assert problems(samconfig(tmp_path, params)) == []


def test_the_stripe_secret_must_hold_both_keys(aws, tmp_path):
    setup_account(aws, stripe={"secret_key": "sk_live_x"})
    found = problems(samconfig(tmp_path, GOOD))
    assert any("has no `webhook_secret`" in p for p in found), found


def test_a_missing_secret_is_refused(aws, tmp_path):
    setup_account(aws, stripe=None, alert_key=None)
    found = problems(samconfig(tmp_path, GOOD))
    assert any(p.startswith("StripeSecretId: no Secrets Manager secret `llmtrack/stripe`") for p in found), found
    assert any(p.startswith("AlertSigningKeySecretId: no Secrets Manager secret") for p in found), found


def test_a_short_alert_signing_key_is_refused(aws, tmp_path):
    setup_account(aws, alert_key="short")
    found = problems(samconfig(tmp_path, GOOD))
    assert any("shorter than 32 characters" in p for p in found), found


def test_old_plain_secret_parameters_are_refused(aws, tmp_path):
    setup_account(aws)
    found = problems(samconfig(tmp_path, dict(GOOD, StripeSecretKey="sk_live_plain")))
    assert any(p.startswith("StripeSecretKey is not a parameter of template.yaml: Stripe's keys now live in Secrets Manager") for p in found), found


def test_command_line_overrides_win_over_samconfig(aws, tmp_path):
    setup_account(aws)
    argv = samconfig(tmp_path, GOOD) + ["--parameter-overrides", "PublicUrl=http://insecure.example.com", "--no-confirm-changeset"]
    found = problems(argv)
    assert any(p.startswith("PublicUrl `http://insecure.example.com`") for p in found), found


def test_required_parameters_and_no_config(aws, tmp_path):
    found = problems(["--config-file", str(tmp_path / "none.toml")])
    assert any("copy infra/aws/samconfig.example.toml" in p for p in found), found
    found = problems(samconfig(tmp_path, {k: v for k, v in GOOD.items() if k != "MailFrom"}))
    assert any(p.startswith("MailFrom is required") for p in found), found


def test_secrets_are_never_printed(aws, tmp_path, capsys):
    setup_account(aws, stripe={"secret_key": "sk_live_SECRETVALUE", "webhook_secret": "not-a-whsec-SECRET2"}, alert_key="short-SECRET3")
    assert preflight.main(samconfig(tmp_path, GOOD)) == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert "refusing to deploy" in text
    for secret in ("SECRETVALUE", "SECRET2", "SECRET3"):
        assert secret not in text


def test_the_example_samconfig_names_only_template_parameters():
    cfg = __import__("deployconfig").read(["--config-file", str(cfn.ROOT / "infra/aws/samconfig.example.toml")])
    declared = cfn.load()["Parameters"]
    assert cfg.parameters and set(cfg.parameters) <= set(declared)


def test_the_dashboard_upload_sets_cache_headers_and_invalidates(aws, tmp_path, monkeypatch):
    import upload_dashboard

    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html>")
    (dist / "assets" / "app-1234.js").write_text("console.log(1)")
    monkeypatch.setattr(upload_dashboard, "DIST", dist)
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="dash", CreateBucketConfiguration={"LocationConstraint": REGION})
    dist_id = aws.client("cloudfront").create_distribution(DistributionConfig={
        "CallerReference": "t", "Comment": "", "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [{"Id": "o", "DomainName": "dash.s3.amazonaws.com", "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
        "DefaultCacheBehavior": {"TargetOriginId": "o", "ViewerProtocolPolicy": "redirect-to-https", "MinTTL": 0},
    })["Distribution"]["Id"]
    aws.client("cloudformation").create_stack(StackName="llmtrack-test", TemplateBody=json.dumps({
        "Resources": {"T": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"DashboardBucketName": {"Value": "dash"}, "DistributionId": {"Value": dist_id},
                    "DashboardUrl": {"Value": "https://d1.cloudfront.net"}},
    }))
    assert upload_dashboard.main(["--stack-name", "llmtrack-test", "--region", REGION]) == 0
    index = s3.head_object(Bucket="dash", Key="index.html")
    asset = s3.head_object(Bucket="dash", Key="assets/app-1234.js")
    assert index["CacheControl"] == "no-cache" and index["ContentType"].startswith("text/html")
    assert asset["CacheControl"] == "public, max-age=31536000, immutable"
    assert asset["ContentType"].startswith("text/javascript")
    invalidations = aws.client("cloudfront").list_invalidations(DistributionId=dist_id)["InvalidationList"]
    assert invalidations.get("Quantity", 0) == 1
