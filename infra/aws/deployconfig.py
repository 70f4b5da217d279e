"""The deployment's settings as `sam deploy` will see them: samconfig.toml (`[ENV.deploy.parameters]`
and `[ENV.global.parameters]`), overridden by the same command-line options `sam deploy` takes
(`--parameter-overrides`, `--stack-name`, `--region`, `--profile`, `--config-file`,
`--config-env`). `make deploy DEPLOY_ARGS="..."` passes the same arguments to both, so the
preflight checks exactly what is deployed."""

from __future__ import annotations

import argparse
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import cfn


class ConfigError(Exception):
    """Settings that cannot be read: the message says what and how to fix it."""


@dataclass
class DeployConfig:
    stack_name: str | None = None
    region: str | None = None
    profile: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)  # as given (template defaults not applied)
    config_file: Path | None = None


def parse_overrides(values: list[str] | str) -> dict[str, str]:
    """`Key=Value` pairs (also SAM's `ParameterKey=K,ParameterValue=V` form), space-separated in
    one string (samconfig) or as a list (the command line)."""
    items: list[str] = []
    for v in [values] if isinstance(values, str) else values:
        items.extend(shlex.split(v))
    out: dict[str, str] = {}
    for item in items:
        if item.startswith("ParameterKey="):
            parts = dict(p.split("=", 1) for p in item.split(",", 1))
            key, value = parts.get("ParameterKey", ""), parts.get("ParameterValue", "")
        elif "=" in item:
            key, value = item.split("=", 1)
        else:
            raise ConfigError(f"parameter override `{item}` is not Key=Value")
        if not key:
            raise ConfigError(f"parameter override `{item}` has no key")
        out[key] = value
    return out


def read(argv: list[str], cwd: Path = cfn.ROOT) -> DeployConfig:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--config-file", default="samconfig.toml")
    p.add_argument("--config-env", default="default")
    p.add_argument("--parameter-overrides", nargs="+", default=[])
    p.add_argument("--stack-name")
    p.add_argument("--region")
    p.add_argument("--profile")
    args, _ = p.parse_known_args(argv)  # the rest is for sam deploy only (--guided, --no-confirm-changeset, ...)

    cfg = DeployConfig()
    path = Path(args.config_file)
    path = path if path.is_absolute() else cwd / path
    if path.is_file():
        cfg.config_file = path
        try:
            doc = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML ({e})") from None
        env = doc.get(args.config_env, {})
        for section in ("global", "deploy"):
            params = env.get(section, {}).get("parameters", {})
            cfg.stack_name = params.get("stack_name", cfg.stack_name)
            cfg.region = params.get("region", cfg.region)
            cfg.profile = params.get("profile", cfg.profile)
            if "parameter_overrides" in params:
                cfg.parameters.update(parse_overrides(params["parameter_overrides"]))
    cfg.parameters.update(parse_overrides(args.parameter_overrides))
    cfg.stack_name = args.stack_name or cfg.stack_name
    cfg.region = args.region or cfg.region
    cfg.profile = args.profile or cfg.profile
    return cfg
