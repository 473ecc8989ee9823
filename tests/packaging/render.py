"""Render a translated template the way CloudFormation would for given parameters.

Evaluates the Conditions section (Fn::Equals, Fn::Not, Fn::And, Fn::Or, Fn::Join, Condition,
Ref), drops resources whose condition is false, and resolves Fn::If, removing AWS::NoValue.
Other intrinsics are left as they are: the assertions only need conditions resolved.
"""

from __future__ import annotations

from typing import Any

NO_VALUE = object()


def _value(node: Any, params: dict[str, Any], conditions: dict[str, bool]) -> Any:
    if isinstance(node, dict) and len(node) == 1:
        ((key, arg),) = node.items()
        if key == "Ref":
            return params.get(arg, node)
        if key == "Fn::Join":
            sep, items = arg
            items = _value(items, params, conditions)
            return sep.join(str(_value(i, params, conditions)) for i in items)
        if key == "Fn::Equals":
            a, b = (_value(x, params, conditions) for x in arg)
            return a == b
        if key == "Fn::Not":
            return not _value(arg[0], params, conditions)
        if key == "Fn::And":
            return all(_value(x, params, conditions) for x in arg)
        if key == "Fn::Or":
            return any(_value(x, params, conditions) for x in arg)
        if key == "Condition":
            return conditions[arg]
    return node


def _resolve(node: Any, conditions: dict[str, bool]) -> Any:
    if isinstance(node, dict):
        if len(node) == 1 and "Fn::If" in node:
            name, then, other = node["Fn::If"]
            return _resolve(then if conditions[name] else other, conditions)
        if node == {"Ref": "AWS::NoValue"}:
            return NO_VALUE
        out = {k: _resolve(v, conditions) for k, v in node.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}
    if isinstance(node, list):
        items = [_resolve(v, conditions) for v in node]
        return [v for v in items if v is not NO_VALUE]
    return node


def render(template: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, spec in template.get("Parameters", {}).items():
        value = overrides.get(name, spec.get("Default"))
        if spec.get("Type") == "CommaDelimitedList" and isinstance(value, str):
            value = value.split(",")
        params[name] = value
    conditions: dict[str, bool] = {}
    pending = dict(template.get("Conditions", {}))
    while pending:
        for name, expr in list(pending.items()):
            try:
                conditions[name] = bool(_value(expr, params, conditions))
            except KeyError:
                continue
            del pending[name]
    resources = {
        name: _resolve(res, conditions)
        for name, res in template["Resources"].items()
        if conditions.get(res.get("Condition", ""), True)
    }
    return {**template, "Resources": resources}
