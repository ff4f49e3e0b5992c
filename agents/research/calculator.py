"""Safe arithmetic for analysts: numbers, operators and a few functions, never arbitrary code.

An expression is parsed with :mod:`ast` and walked: only numbers, ``+ - * / //
% **``, parentheses, unary signs and the functions below are accepted; names,
attributes, subscripts, comprehensions and everything else are refused before
anything runs. Arithmetic is done in floats, so no expression can build a
huge integer; overflow, division by zero and domain errors become
:class:`~agents.errors.ToolError` for the model to read.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

from agents.errors import ToolError

__all__ = ["FUNCTIONS", "evaluate"]

_TOOL = "calculate"
_MAX_LENGTH = 300
_MAX_EXPONENT = 1000.0


def _cagr(first: float, last: float, years: float) -> float:
    """Compound annual growth rate from ``first`` to ``last`` over ``years``, as a fraction."""
    if first <= 0 or years <= 0:
        raise ValueError("cagr needs a positive first value and a positive number of years")
    return float((last / first) ** (1.0 / years) - 1.0)


def _change(first: float, last: float) -> float:
    """Relative change from ``first`` to ``last``, as a fraction."""
    if first == 0:
        raise ValueError("change from zero is undefined")
    return (last - first) / first


FUNCTIONS: dict[str, Callable[..., float]] = {
    "abs": abs,
    "round": lambda x, digits=0: float(round(x, int(digits))),
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "log": math.log,
    "exp": math.exp,
    "cagr": _cagr,
    "change": _change,
}

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


def evaluate(expression: str) -> float:
    """The value of an arithmetic ``expression``, e.g. ``"cagr(1480, 1840, 4) * 100"``.

    Raises:
        ToolError: the expression is not plain arithmetic, or cannot be computed.
    """
    if len(expression) > _MAX_LENGTH:
        raise ToolError(_TOOL, f"the expression is longer than {_MAX_LENGTH} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ToolError(_TOOL, f"not an arithmetic expression: {exc.msg}") from None
    try:
        value = _value(tree.body)
    except (ArithmeticError, ValueError, TypeError) as exc:
        raise ToolError(_TOOL, f"cannot compute {expression!r}: {exc}") from None
    if not math.isfinite(value):
        raise ToolError(_TOOL, f"{expression!r} is not a finite number")
    return value


def _value(node: ast.expr) -> float:
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        operand = _value(node.operand)
        return operand if isinstance(node.op, ast.UAdd) else -operand
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise ValueError(f"exponents are limited to {_MAX_EXPONENT:g}")
        return float(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        function = FUNCTIONS.get(node.func.id)
        if function is None:
            raise ToolError(_TOOL, f"unknown function {node.func.id!r}; use {', '.join(FUNCTIONS)}")
        return float(function(*(_value(arg) for arg in node.args)))
    raise ToolError(
        _TOOL, f"{type(node).__name__} is not allowed: numbers, + - * / // % ** and functions only"
    )
