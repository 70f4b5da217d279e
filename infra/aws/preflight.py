#!/usr/bin/env python3
"""Refuses to deploy a stack that could not work, before `sam deploy` runs (`make deploy`).

Usage: infra/aws/preflight.py [sam deploy options]

It reads the parameters `sam deploy` will use (samconfig.toml, then `--parameter-overrides`; see
deployconfig.py) with the template's defaults, and checks, against the AWS account:

- MailFrom, and SupportEmail when set, are SES identities verified for sending (the address's own
  identity or its domain's): the privacy policy forbids publishing an unreachable support address,
  and no sign-in code reaches anyone from an unverified sender;
- the SES account is out of the sandbox (else SES refuses every recipient it has not verified);
- PublicUrl is an https origin, and the CloudFront distribution's address: https://DomainName with a
  custom domain (which needs a certificate in us-east-1), else this stack's DashboardUrl output
  once the stack exists;
- Stripe is configured whole or not at all: StripeSecretId, StripePricePro and StripePriceTeam
  together, the secret holding both `secret_key` and `webhook_secret`;
- the alert signing key's secret exists and is at least 32 characters;
- no parameter the template does not have (such as the old plain StripeSecretKey).

Each problem is printed with what to do; the exit status is 1 when there is any. Secret values
are read only to check their shape and are never printed.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import boto3  # noqa: E402
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError  # noqa: E402

import cfn  # noqa: E402
import deployconfig  # noqa: E402

STRIPE = ("StripeSecretId", "StripePricePro", "StripePriceTeam")
REPLACED = {
    "StripeSecretKey": "Stripe's keys now live in Secrets Manager: store {\"secret_key\": ..., \"webhook_secret\": ...} in a secret and pass StripeSecretId=<its name>",
    "StripeWebhookSecret": "Stripe's keys now live in Secrets Manager: store {\"secret_key\": ..., \"webhook_secret\": ...} in a secret and pass StripeSecretId=<its name>",
    "AlertSigningKey": "the alert signing key now lives in Secrets Manager: store it in a secret and pass AlertSigningKeySecretId=<its name>",
}


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def refuse(self, message: str) -> None:
        self.problems.append(message)


def error_code(e: ClientError) -> str:
    return e.response.get("Error", {}).get("Code", "")


# ---------------------------------------------------------------------------------------------
# SES
# ---------------------------------------------------------------------------------------------

def identity_state(ses, identity: str) -> str | None:
    """'verified', 'pending' (exists, not verified: its status), or None when SES has no such identity."""
    try:
        got = ses.get_email_identity(EmailIdentity=identity)
    except ClientError as e:
        if error_code(e) == "NotFoundException":
            return None
        raise
    if got.get("VerifiedForSendingStatus") or got.get("VerificationStatus") == "SUCCESS":
        return "verified"
    return (got.get("VerificationStatus") or "not verified").lower()


def verified_identities(ses) -> list[str]:
    names, token = [], None
    while True:
        page = ses.list_email_identities(**({"NextToken": token} if token else {}), PageSize=100)
        names += [i["IdentityName"] for i in page.get("EmailIdentities", []) if i.get("VerificationStatus") == "SUCCESS"]
        token = page.get("NextToken")
        if not token:
            return names


def check_sender(ses, report: Report, parameter: str, address: str) -> None:
    if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", address):
        report.refuse(f"{parameter} `{address}` is not a bare email address (like noreply@example.com)")
        return
    domain = address.rsplit("@", 1)[1].lower()
    states = {address: identity_state(ses, address), domain: identity_state(ses, domain)}
    if "verified" in states.values():
        return
    seen = ", ".join(f"{k}: {v}" for k, v in states.items() if v) or "neither is an SES identity"
    known = verified_identities(ses)
    report.refuse(
        f"{parameter} {address} is not verified in SES in this region ({seen}). Verify the address "
        f"(aws sesv2 create-email-identity --email-identity {address}, then click the link SES mails "
        f"to it) or its domain {domain} (DNS records), and deploy again."
        + (f" Verified identities here: {', '.join(sorted(known))}." if known else "")
    )


def check_ses(session, params: dict[str, str], report: Report) -> None:
    ses = session.client("sesv2")
    check_sender(ses, report, "MailFrom", params["MailFrom"])
    if params.get("SupportEmail"):
        check_sender(ses, report, "SupportEmail", params["SupportEmail"])
    try:
        account = ses.get_account()
    except (ClientError, BotoCoreError) as e:
        report.notes.append(f"could not read the SES account's sandbox status ({type(e).__name__}); check it in the SES console")
        return
    if account.get("ProductionAccessEnabled") is False:
        report.refuse(
            "the SES account is in the sandbox: it sends only to verified recipients, so customers would "
            "get no sign-in codes. Request production access (SES console, Account dashboard) and deploy again."
        )


# ---------------------------------------------------------------------------------------------
# PublicUrl, custom domain
# ---------------------------------------------------------------------------------------------

def stack_output(session, stack_name: str | None, key: str) -> str | None:
    if not stack_name:
        return None
    try:
        stacks = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as e:
        if "does not exist" in str(e):
            return None
        raise
    for o in stacks[0].get("Outputs", []) if stacks else []:
        if o.get("OutputKey") == key:
            return o.get("OutputValue")
    return None


def check_public_url(session, params: dict[str, str], stack_name: str | None, report: Report) -> None:
    url, domain, cert = params.get("PublicUrl", ""), params.get("DomainName", ""), params.get("CertificateArn", "")
    if url and not re.fullmatch(r"https://[^/\s]+", url.rstrip("/")):
        report.refuse(f"PublicUrl `{url}` is not an https:// origin (scheme and host only, e.g. https://app.example.com): browsers send session cookies only over https")
        return
    if domain:
        if not cert:
            report.refuse(f"DomainName {domain} needs CertificateArn: an ACM certificate in us-east-1 covering {domain}")
        elif ":acm:us-east-1:" not in cert:
            report.refuse(f"CertificateArn must be in us-east-1 (CloudFront reads certificates only there), got {cert}")
        if url and url.rstrip("/") != f"https://{domain}":
            report.refuse(f"PublicUrl {url} is not the dashboard's address https://{domain}: leave PublicUrl empty (it defaults to https://DomainName) or set it to that")
        return
    if not url:
        report.refuse("PublicUrl is empty and there is no DomainName: set DomainName (and CertificateArn), or PublicUrl to this stack's DashboardUrl output (docs/DEPLOYMENT.md explains the first deploy)")
        return
    actual = stack_output(session, stack_name, "DashboardUrl")
    if actual is None:
        report.notes.append(
            "the stack has no DashboardUrl yet (first deploy): after this deploy, set PublicUrl to its "
            "DashboardUrl output and deploy again; until then emailed links and session writes use PublicUrl"
        )
    elif actual.rstrip("/") != url.rstrip("/"):
        report.refuse(f"PublicUrl {url} is not this stack's dashboard address: set PublicUrl={actual} (the DashboardUrl output), or a DomainName")


# ---------------------------------------------------------------------------------------------
# Secrets and Stripe
# ---------------------------------------------------------------------------------------------

def secret_value(session, secret_id: str, parameter: str, report: Report) -> str | None:
    try:
        got = session.client("secretsmanager").get_secret_value(SecretId=secret_id)
    except ClientError as e:
        if error_code(e) == "ResourceNotFoundException":
            report.refuse(f"{parameter}: no Secrets Manager secret `{secret_id}` in this region (aws secretsmanager create-secret --name {secret_id} ...)")
        elif error_code(e) in ("AccessDeniedException", "DecryptionFailure"):
            report.refuse(f"{parameter}: cannot read secret `{secret_id}` ({error_code(e)}); CloudFormation will need to read it with your credentials too")
        else:
            raise
        return None
    value = got.get("SecretString")
    if value is None:
        report.refuse(f"{parameter}: secret `{secret_id}` holds binary data; store a string (SecretString)")
    return value


def check_stripe(session, params: dict[str, str], report: Report) -> None:
    given = [k for k in STRIPE if params.get(k, "").strip()]
    if not given:
        return
    if len(given) < len(STRIPE):
        missing = [k for k in STRIPE if k not in given]
        report.refuse(
            f"Stripe is half-configured: {', '.join(given)} set but {', '.join(missing)} not. Set all of "
            f"{', '.join(STRIPE)} (billing on), or none of them (billing answers \"not configured\")."
        )
        return
    for k in ("StripePricePro", "StripePriceTeam"):
        if not params[k].startswith("price_"):
            report.refuse(f"{k} `{params[k]}` is not a Stripe price id (price_...)")
    value = secret_value(session, params["StripeSecretId"], "StripeSecretId", report)
    if value is None:
        return
    try:
        doc = json.loads(value)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        report.refuse('StripeSecretId: the secret must be a JSON object {"secret_key": "sk_...", "webhook_secret": "whsec_..."}')
        return
    for key, prefix in (("secret_key", ("sk_", "rk_")), ("webhook_secret", ("whsec_",))):
        v = doc.get(key)
        if not isinstance(v, str) or not v.strip():
            report.refuse(f"StripeSecretId: the secret has no `{key}`; it needs both secret_key and webhook_secret")
        elif not v.strip().startswith(prefix):
            report.refuse(f"StripeSecretId: `{key}` does not look like a Stripe {'API key' if key == 'secret_key' else 'webhook signing secret'} (it should start with {' or '.join(prefix)})")


def check_alert_key(session, params: dict[str, str], report: Report) -> None:
    secret_id = params.get("AlertSigningKeySecretId", "")
    if not secret_id:
        return  # reported as a missing parameter
    value = secret_value(session, secret_id, "AlertSigningKeySecretId", report)
    if value is not None and len(value) < 32:
        report.refuse(f"AlertSigningKeySecretId: the key in `{secret_id}` is shorter than 32 characters; store a random one (openssl rand -hex 32)")


# ---------------------------------------------------------------------------------------------

def check(argv: list[str]) -> Report:
    report = Report()
    try:
        cfg = deployconfig.read(argv)
    except deployconfig.ConfigError as e:
        report.refuse(str(e))
        return report
    template = cfn.load()
    declared = template.get("Parameters", {})
    for k in cfg.parameters:
        if k not in declared:
            report.refuse(f"{k} is not a parameter of template.yaml" + (f": {REPLACED[k]}" if k in REPLACED else ""))
    params = {k: str(v.get("Default", "")) for k, v in declared.items() if "Default" in v}
    params.update(cfg.parameters)
    for k, v in declared.items():
        if "Default" not in v and not params.get(k):
            report.refuse(f"{k} is required: add {k}=... to parameter_overrides in samconfig.toml or to --parameter-overrides")
    if cfg.config_file is None and not cfg.parameters:
        report.refuse("no parameters: copy infra/aws/samconfig.example.toml to samconfig.toml and fill it in (docs/DEPLOYMENT.md)")
        return report
    if report.problems:
        return report

    session = boto3.Session(profile_name=cfg.profile, region_name=cfg.region)
    try:
        check_public_url(session, params, cfg.stack_name, report)
        check_stripe(session, params, report)
        check_alert_key(session, params, report)
        check_ses(session, params, report)
    except NoRegionError:
        report.refuse("no AWS region: set region in samconfig.toml, --region, or AWS_REGION")
    except NoCredentialsError:
        report.refuse("no AWS credentials: set AWS_PROFILE (or --profile) or the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY variables")
    except ClientError as e:
        report.refuse(f"AWS refused a check: {error_code(e)}: {e.response.get('Error', {}).get('Message', '')}")
    return report


def main(argv: list[str]) -> int:
    report = check(argv)
    for note in report.notes:
        print(f"preflight: note: {note}")
    if report.problems:
        print("preflight: refusing to deploy:", file=sys.stderr)
        for p in report.problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    print("preflight: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
