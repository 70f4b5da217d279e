"""Reading template.yaml: CloudFormation's short forms (`!Ref X`, `!Sub ...`, `!If [...]`) become
their long forms (`{"Ref": "X"}`, `{"Fn::Sub": ...}`), as CloudFormation reads them."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


class _Loader(yaml.SafeLoader):
    pass


def _tag(loader: _Loader, suffix: str, node: yaml.Node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        return {"Fn::GetAtt": value.split(".", 1)}
    if suffix == "Condition":
        return {"Condition": value}
    return {f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _tag)


def load(path: Path = TEMPLATE) -> dict:
    return yaml.load(path.read_text(), Loader=_Loader)


def functions(template: dict) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v.get("Type") == "AWS::Serverless::Function"}


def environment(template: dict, logical_id: str) -> dict:
    """A function's environment variables: the Globals' and its own."""
    env = dict(template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    props = template["Resources"][logical_id].get("Properties", {})
    env.update(props.get("Environment", {}).get("Variables", {}))
    return env
