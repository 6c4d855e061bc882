"""Subscription filter policies: SNS filter-policy syntax over JSON message bodies.

A subscription's ``options.filter`` (docs/filter-policies.md) says which
messages it is notified of. The policy is a JSON object whose keys name
keys of the message body; a key maps either to a list of conditions (the
body's value must meet at least one) or to an object addressing the keys
nested below it. Every key of the policy must match (AND across keys, OR
within a list). Conditions, as in Amazon SNS's payload-based filtering:

* an exact string, number (``150`` matches ``150.0``), boolean or ``null``;
* ``{"prefix": "ord"}``, ``{"suffix": ".png"}`` (strings only);
* ``{"anything-but": [...]}`` (or one value): present and none of them;
* ``{"numeric": ["=", 5]}``, ``{"numeric": [">=", 100, "<", 200]}``;
* ``{"exists": true}`` / ``{"exists": false}``: the key is (not) there.

All conditions but ``{"exists": false}`` need the key to be present. When
the body's value is a list, the condition holds if it holds for one of its
elements. A body that is not a JSON object matches no policy.

``compile_policy`` checks a policy once (the bad key and condition are
named in the ``BadRequest``; with ``limits``, the ``[limits]`` bounds on its
keys, conditions, depth and size apply too) and returns a ``FilterPolicy``
whose ``matches(body)`` is a walk over precompiled predicates: the edge
compiles to validate, the notifier stage compiles each stored policy once
per worker (``of_options``, a cache keyed by the options' JSON text) and only
matches on the post path. Pure functions, no I/O; compiled policies are
immutable and safe to share between threads.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from typing import Any

from herald.common.errors import BadRequest

#: The subscription option that holds a policy.
OPTION = "filter"

_ABSENT = object()
_NUMERIC_OPS: dict[str, Callable[[float, float], bool]] = {
    "=": lambda a, b: a == b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}
_LOWER, _UPPER = (">", ">="), ("<", "<=")
OPERATORS = ("prefix", "suffix", "anything-but", "numeric", "exists")

Predicate = Callable[[Any], bool]


class FilterPolicyError(BadRequest):
    """An invalid policy; the description names the key and the condition."""


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    # isfinite would convert a huge int to float and overflow.
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _show(condition: Any) -> str:
    return json.dumps(condition, sort_keys=True)


def _exact(expected: Any) -> Predicate:
    if expected is None:
        return lambda value: value is None
    if isinstance(expected, bool):
        return lambda value: value is expected
    if isinstance(expected, str):
        return lambda value: isinstance(value, str) and value == expected
    return lambda value: _is_number(value) and value == expected


def _numeric(key: str, spec: Any) -> Predicate:
    bad = f'numeric condition {_show({"numeric": spec})} of key "{key}"'
    if not isinstance(spec, list) or len(spec) not in (2, 4):
        raise FilterPolicyError(f"Invalid filter policy: {bad} must be [operator, number] "
                                "or [lower operator, number, upper operator, number].")
    pairs = [(spec[i], spec[i + 1]) for i in range(0, len(spec), 2)]
    for op, bound in pairs:
        if op not in _NUMERIC_OPS or not _is_number(bound):
            raise FilterPolicyError(f"Invalid filter policy: {bad} needs operators among "
                                    f"{list(_NUMERIC_OPS)} each followed by a number.")
    if len(pairs) == 2:
        (low_op, low), (high_op, high) = pairs
        if low_op not in _LOWER or high_op not in _UPPER or not low < high:
            raise FilterPolicyError(f"Invalid filter policy: {bad} must be a range: "
                                    "> or >= a number, then < or <= a larger one.")
    tests = [(_NUMERIC_OPS[op], bound) for op, bound in pairs]
    return lambda value: _is_number(value) and all(test(value, bound) for test, bound in tests)


def _operator(key: str, condition: dict[str, Any]) -> tuple[Predicate, bool]:
    """``(predicate over one value, whether it needs the key present)``."""
    (name, arg), = condition.items()
    bad = f'condition {_show(condition)} of key "{key}"'
    if name in ("prefix", "suffix"):
        if not isinstance(arg, str) or not arg:
            raise FilterPolicyError(f"Invalid filter policy: {bad}: {name} must be a "
                                    "non-empty string.")
        if name == "prefix":
            return (lambda value: isinstance(value, str) and value.startswith(arg)), True
        return (lambda value: isinstance(value, str) and value.endswith(arg)), True
    if name == "anything-but":
        excluded = arg if isinstance(arg, list) else [arg]
        if not excluded or not all(isinstance(v, str) or _is_number(v) for v in excluded):
            raise FilterPolicyError(f"Invalid filter policy: {bad}: anything-but takes a "
                                    "string, a number or a non-empty list of them.")
        tests = [_exact(v) for v in excluded]
        return (lambda value: not any(test(value) for test in tests)), True
    if name == "numeric":
        return _numeric(key, arg), True
    if name == "exists":
        if not isinstance(arg, bool):
            raise FilterPolicyError(f"Invalid filter policy: {bad}: exists must be true "
                                    "or false.")
        return (lambda value: True), arg
    raise FilterPolicyError(f"Invalid filter policy: {bad}: unknown operator {name!r}; "
                            f"known: {', '.join(OPERATORS)}.")


def _key_matcher(key: str, conditions: list[Any]) -> Predicate:
    """The test of one leaf key: over the body's value, ``_ABSENT`` if missing."""
    if not conditions:
        raise FilterPolicyError(f'Invalid filter policy: key "{key}" has no condition.')
    present_tests: list[Predicate] = []
    match_absent = False
    for condition in conditions:
        if isinstance(condition, dict):
            if len(condition) != 1:
                raise FilterPolicyError(
                    f"Invalid filter policy: condition {_show(condition)} of key \"{key}\" "
                    "must have exactly one operator.")
            test, needs_key = _operator(key, condition)
            if needs_key:
                present_tests.append(test)
            else:
                match_absent = True
        elif condition is None or isinstance(condition, str | bool) or _is_number(condition):
            present_tests.append(_exact(condition))
        else:
            raise FilterPolicyError(
                f"Invalid filter policy: condition {_show(condition)} of key \"{key}\" must "
                "be a string, a number, a boolean, null or an operator object.")

    def matches(value: Any) -> bool:
        if value is _ABSENT:
            return match_absent
        if isinstance(value, list):
            return any(test(v) for v in value for test in present_tests)
        for test in present_tests:
            if test(value):
                return True
        return False

    return matches


class FilterPolicy:
    """A compiled policy: ``matches(body)`` says whether a body is notified."""

    __slots__ = ("_tree", "keys", "conditions", "depth")

    def __init__(self, tree: dict[str, Any], keys: int, conditions: int, depth: int) -> None:
        self._tree = tree
        self.keys = keys
        self.conditions = conditions
        self.depth = depth

    def matches(self, body: Any) -> bool:
        return isinstance(body, dict) and _match(self._tree, body)


def _match(tree: dict[str, Any], body: Any) -> bool:
    for key, node in tree.items():
        value = body.get(key, _ABSENT) if isinstance(body, dict) else _ABSENT
        if isinstance(node, dict):
            if not _match(node, value if value is not _ABSENT else None):
                return False
        elif not node(value):
            return False
    return True


def _build(policy: dict[str, Any], path: str, depth: int,
           counts: list[int]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    counts[2] = max(counts[2], depth)
    for key, node in policy.items():
        name = f"{path}.{key}" if path else key
        if isinstance(node, dict):
            if not node:
                raise FilterPolicyError(f'Invalid filter policy: key "{name}" is an empty '
                                        "object.")
            tree[key] = _build(node, name, depth + 1, counts)
        elif isinstance(node, list):
            tree[key] = _key_matcher(name, node)
            counts[0] += 1
            counts[1] += len(node)
        else:
            raise FilterPolicyError(f'Invalid filter policy: key "{name}" must map to a list '
                                    "of conditions or to an object of nested keys.")
    return tree


def compile_policy(policy: Any, limits: Any = None) -> FilterPolicy:
    """Check ``policy`` and compile it; ``limits`` (the ``[limits]`` group)
    adds the size, keys, conditions and depth bounds (the edge passes it)."""
    if not isinstance(policy, dict) or not policy:
        raise FilterPolicyError("Invalid filter policy: it must be a non-empty object of keys "
                                "to lists of conditions.")
    if limits is not None:
        size = len(json.dumps(policy, separators=(",", ":")).encode())
        if size > limits.max_filter_policy_size:
            raise FilterPolicyError(f"Invalid filter policy: it is {size} bytes, more than "
                                    f"{limits.max_filter_policy_size}.")
    counts = [0, 0, 1]  # leaf keys, conditions, depth
    tree = _build(policy, "", 1, counts)
    compiled = FilterPolicy(tree, *counts)
    if limits is not None:
        for what, value, maximum in (
                ("keys", compiled.keys, limits.max_filter_policy_keys),
                ("conditions", compiled.conditions, limits.max_filter_policy_conditions),
                ("levels of nesting", compiled.depth, limits.max_filter_policy_depth)):
            if value > maximum:
                raise FilterPolicyError(f"Invalid filter policy: it has {value} {what}, more "
                                        f"than {maximum}.")
    return compiled


def validate_options(options: Any, limits: Any) -> None:
    """The ``filter`` of a subscription's options, if any (edges, REST and websocket)."""
    if isinstance(options, dict) and OPTION in options:
        compile_policy(options[OPTION], limits)


@functools.lru_cache(maxsize=4096)
def of_options(options_json: str | None) -> FilterPolicy | None:
    """The compiled ``filter`` of a subscription's stored options (their JSON
    text), compiled once per worker and text; None when there is none, or
    one that does not compile (stored before filters existed, when
    ``filter`` meant nothing): such a subscription is notified of everything."""
    if not options_json or f'"{OPTION}"' not in options_json:
        return None
    try:
        options = json.loads(options_json)
        if not isinstance(options, dict) or OPTION not in options:
            return None
        return compile_policy(options[OPTION])
    except (FilterPolicyError, ValueError):
        return None
