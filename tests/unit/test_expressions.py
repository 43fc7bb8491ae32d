"""Expressions and templates: JSON semantics, raw values vs text, and safety bounds."""

from __future__ import annotations

import copy
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from app.errors import ExpressionError, ExpressionLimit
from app.expressions import evaluator
from app.expressions.evaluator import ExpressionSyntaxError
from app.expressions.expression import compile_expression
from app.expressions.templates import compile_template, is_whole_template

SCOPE: dict[str, Any] = {
    "input": {"api": "https://api.test", "orderId": 7, "name": "Bob", "none": None},
    "fetch": {
        "status": 200,
        "body": {
            "total": 150,
            "lines": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 3}],
            "items": 3,
            "keys": "k",
            "tags": ["x", "y", "z"],
        },
    },
    "item": {"sku": "a"},
    "index": 4,
    "execution": {"id": "e-1"},
}


def evaluate(source: str, scope: dict[str, Any] = SCOPE) -> Any:
    return compile_expression(source).evaluate(scope)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("fetch.body.total", 150),
        ("fetch.body.total > 100", True),
        ("fetch.body.total > 100 and input.orderId == 7", True),
        ("not fetch.body.total", False),
        ("fetch['body']['lines'][1]['sku']", "b"),
        ('fetch["body"].lines[-1].sku', "b"),
        ("fetch.body.items", 3),  # a key named like a dict method is read as the key
        ("fetch.body.keys", "k"),
        ("fetch.body.tags[1:]", ["y", "z"]),
        ("input.orderId * 2 + 1", 15),
        ("input.orderId / 2", 3.5),
        ("input.orderId // 2", 3),
        ("input.orderId % 4", 3),
        ("2 ** 10", 1024),
        ("'x' if fetch.body.total > 100 else 'y'", "x"),
        ("'o' in input.name", True),
        ("'q' not in fetch.body.tags", True),
        ("input.none is None", True),
        ("input.name.upper()", "BOB"),
        ("input.name.lower().startswith('b')", True),
        ("input.name.replace('o', '0')", "B0b"),
        ("', '.join(fetch.body.tags)", "x, y, z"),
        ("len(fetch.body.lines)", 2),
        ("[line.sku for line in fetch.body.lines]", ["a", "b"]),
        ("[l.sku for l in fetch.body.lines if l.qty > 2]", ["b"]),
        ("{l.sku: l.qty for l in fetch.body.lines}", {"a": 2, "b": 3}),
        ("sum(l.qty for l in fetch.body.lines)", 5),
        ("sum([1, 2.5])", 3.5),
        ("min(3, 1, 2)", 1),
        ("max([1, 5])", 5),
        ("abs(-2)", 2),
        ("round(2.567, 1)", 2.6),
        ("int('42')", 42),
        ("float('1.5')", 1.5),
        ("str(5)", "5"),
        ("bool(0)", False),
        ("sorted([3, 1, 2])", [1, 2, 3]),
        ("sorted(fetch.body.tags, key=len)", ["x", "y", "z"]),
        ("any([0, 1])", True),
        ("all([1, 0])", False),
        ("{'a': [1, 2], 'b': None}", {"a": [1, 2], "b": None}),
        ("[1, *[2, 3]]", [1, 2, 3]),
        ("f'{input.orderId:03d}-{input.name}'", "007-Bob"),
        ("item.sku + str(index)", "a4"),
        ("execution.id", "e-1"),
        ("fetch.body.total.real", 150),
    ],
)
def test_expression_evaluates_with_json_semantics(source: str, expected: Any) -> None:
    assert evaluate(source) == expected


@pytest.mark.parametrize(
    ("source", "names"),
    [
        ("fetch.body.total > input.limit", {"fetch", "input"}),
        ("len(fetch.body.lines)", {"fetch"}),
        ("[l.sku for l in fetch.body.lines if l.qty > input.min]", {"fetch", "input"}),
        ("{k: v for k, v in pairs.list}", {"pairs"}),
        ("[x for x in a.list for y in x.more]", {"a"}),
        ("sorted(a.list, key=len)", {"a"}),
        ("sum.total + max.value", {"sum", "max"}),  # nodes named like functions
        ("item.sku + index", {"item", "index"}),
        ("x[y.key]", {"x", "y"}),
        ("True and None or 1", set()),
        ("f'{a.b}-{c}'", {"a", "c"}),
    ],
)
def test_expression_names_are_roots_without_functions_or_bound_names(
    source: str, names: set[str]
) -> None:
    assert compile_expression(source).names == names


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("fetch.body.foo", "no key 'foo' in fetch.body"),
        ("fetch.body['nope']", "no key 'nope' in fetch.body"),
        ("fetch.body.lines[5]", "index 5 is out of range for fetch.body.lines (length 2)"),
        ("fetch.body.lines[0].sku.x", "fetch.body.lines[0].sku is string"),
        ("input.none.x", "input.none is null, which has no attribute 'x'"),
        ("input.none['x']", "cannot read 'x' of input.none: it is null"),
        ("ghost.x", "name 'ghost' is not defined"),
        ("1 / 0", "division by zero"),
        ("input.name + 1", "can only concatenate str"),
        ("fetch.body.total.x", "fetch.body.total is number, which has no attribute 'x'"),
        (
            "fetch.body.lines.append(1)",
            "fetch.body.lines is array, which has no attribute 'append'",
        ),
        ("input.name.ljust(10 ** 9)", "has no attribute 'ljust'"),
        ("input.orderId.to_bytes(10 ** 9, 'big')", "has no attribute 'to_bytes'"),
        ("9 ** 9 ** 9", "too large"),
        ("2 ** 200000", "too large"),
        ("(10 ** 20000) * (10 ** 20000)", "too large"),
        ("'a' * 200000", "too long"),
        ("[[1] * 99999] * 99999", "too long"),
        ("('x' * 1000).replace('x', 'x' * 1000)", "replace() result is too long"),
        ("'%0999999999d' % 1", "'%' formatting of strings is not supported"),
        ("f'{1:>99999}'", "format width or precision too large"),
        ("sum([[1], [2]], [])", "sum() adds numbers only"),
        ("round(5, -10 ** 9)", "round() takes at most 1000 digits"),
        ("len", "a function or method is not a value"),
        ("input.name.upper", "a function or method is not a value"),
        ("2 ** 12999 + 2 ** 12999", "result is over 13000 bits"),
        ("3 ** 12000", "result is over 13000 bits"),
    ],
)
def test_evaluation_failure_is_a_clear_expression_error(source: str, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate(source)
    assert message in info.value.message
    assert f"expression '{source}' failed" in info.value.message
    assert info.value.details == {"expression": source}
    assert info.value.retryable is False


@pytest.mark.parametrize("method", ["items", "keys", "values", "get", "pop", "update", "copy"])
@pytest.mark.parametrize("call", ["", "()", "('a')"])
def test_dict_methods_are_never_reachable(method: str, call: str) -> None:
    scope = {"d": {"a": 1}}
    with pytest.raises(ExpressionError, match=f"no key '{method}' in d"):
        evaluate(f"d.{method}{call}", scope)
    assert scope == {"d": {"a": 1}}


@pytest.mark.parametrize(
    "source",
    ["fetch.body.lines.pop()", "fetch.body.tags.sort()", "fetch.body.update({'total': 0})"],
)
def test_expressions_cannot_mutate_step_outputs(source: str) -> None:
    scope = copy.deepcopy(SCOPE)
    with pytest.raises(ExpressionError):
        evaluate(source, scope)
    assert scope == SCOPE


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("input.__class__", "access to '__class__' is not allowed"),
        ("().__class__.__bases__[0].__subclasses__()", "access to '__"),
        ("input.name.__len__()", "access to '__len__' is not allowed"),
        ("__import__('os').system('true')", "unknown function '__import__'"),
        ("open('/etc/passwd')", "unknown function 'open'"),
        ("eval('1')", "unknown function 'eval'"),
        ("getattr(input, 'x')", "unknown function 'getattr'"),
        ("len(x)(1)", "only functions and methods can be called"),
        ("lambda: 1", "Lambda is not supported"),
        ("(x := 1)", "NamedExpr is not supported"),
        ("{x for x in [1]}", "SetComp is not supported"),
        ("1 @ 2", "MatMult is not supported"),
        ("a = 1", "invalid syntax"),
        ("import os", "invalid syntax"),
        ("a; b", "invalid syntax"),
        ("a +", "invalid syntax"),
        ("", "the expression is empty"),
        ("   ", "the expression is empty"),
        ("x" * 10_001, "longer than 10000 characters"),
        ("+".join(["1"] * 150), "nested deeper than 100 levels"),
    ],
)
def test_unsafe_or_malformed_expression_is_rejected_at_compile(source: str, message: str) -> None:
    with pytest.raises(ExpressionSyntaxError) as info:
        compile_expression(source)
    assert message in info.value.message
    assert isinstance(info.value, ValueError)
    assert info.value.expression in (source, source.strip())


def test_evaluation_cpu_time_is_bounded_as_a_backstop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evaluator, "MAX_EVAL_SECONDS", 0.0)
    with pytest.raises(ExpressionLimit, match="took more than 0 s of CPU"):
        evaluate("[x + 1 for x in [0] * 2000]")


HOSTILE = [
    "len([len(sorted('a'*9999)) for x in 'a'*9999])",  # 4.7 s of a blocked event loop before
    "len(''.join(['a'*99999 for x in 'a'*9999]))",  # 900 MB before
    "[x * 2 for x in 'a'*9999 for y in 'b'*9999]",
    "[[y for y in 'a'*99] for x in 'a'*99]",
    "[str(sorted('ab'*4999)) for x in 'a'*9999]",
    "[big.rows[::-1] for x in 'a'*999]",
    "[9999 in big.rows for x in 'a'*9999]",
    "[max(big.rows) for x in 'a'*9999]",
    "[str(big.rows) for x in 'a'*999]",
    "[big.text.split('a') for x in 'a'*9999]",
    "[big.text.upper() for x in 'a'*9999]",
    "[int('9'*4000) for x in 'a'*9999]",
    "[f'{big.rows}' for x in 'a'*99]",
    "[0] * 60000 + [0] * 60000",
    "', '.join(['a'] * 100000)",
    "[x for x in [0] * 20000]",
]
BIG = {"big": {"rows": list(range(100_000)), "text": "ab" * 50_000}}


@pytest.mark.parametrize("source", HOSTILE)
def test_hostile_expression_fails_with_expression_limit_within_bounded_cpu_and_memory(
    source: str,
) -> None:
    expression = compile_expression(source)
    tracemalloc.start()
    cpu = time.thread_time()
    try:
        with pytest.raises(ExpressionLimit) as info:
            expression.evaluate(BIG)
        cpu = time.thread_time() - cpu
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.code == "expression_limit"
    assert info.value.retryable is False
    assert f"expression '{source}' failed" in info.value.message
    # Generous against a loaded machine (a few ms here), far under seconds of CPU before.
    assert cpu < 0.2
    assert peak < 20_000_000


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("[x * 2 for x in data.rows][-1]", 1998),
        ("len([r for r in data.rows if r % 2])", 500),
        ("sum(data.rows)", 499_500),
        ("sorted(data.rows, reverse=True)[0]", 999),
        ("max(data.rows) + min(data.rows)", 999),
        ("len(str(data.rows))", len(str(list(range(1000))))),
        ("len(data.text.split())", 2000),
        ("data.text.upper()[:3]", "AB "),
        ("{r: r * r for r in data.rows[:100]}[9]", 81),
        ("len(', '.join([str(r) for r in data.rows[:500]]))", len(", ".join(map(str, range(500))))),
        ("999 in data.rows", True),
        ("f'{len(data.rows)} rows'", "1000 rows"),
    ],
)
def test_ordinary_expressions_over_a_thousand_values_still_work(source: str, expected: Any) -> None:
    data = {"data": {"rows": list(range(1000)), "text": "ab " * 2000}}

    assert evaluate(source, data) == expected


def test_one_step_s_params_share_one_work_budget() -> None:
    scope = {"input": {"rows": list(range(800))}}
    one = compile_template({"a": "{{ [r for r in input.rows] }}"})
    five = compile_template({k: "{{ [r for r in input.rows] }}" for k in "abcde"})

    assert one.render(scope)["a"] == scope["input"]["rows"]
    with pytest.raises(ExpressionLimit):
        five.render(scope)
    assert one.render(scope)["a"] == scope["input"]["rows"]  # the next render starts afresh


def test_a_mistake_is_still_an_expression_error_not_a_limit() -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate("1 / 0")

    assert not isinstance(info.value, ExpressionLimit)
    assert info.value.code == "expression_error"


def test_huge_results_are_refused_but_plain_references_pass_through() -> None:
    big = {"rows": list(range(1_100_000))}
    assert evaluate("big.rows", {"big": big}) is big["rows"]  # data already in memory
    with pytest.raises(ExpressionError, match="result holds more than"):
        evaluate("big.rows if True else None", {"big": big})


def test_evaluators_are_safe_to_use_from_many_threads() -> None:
    expr = compile_expression("[v * 2 for v in data.values][-1] + len(data.values)")

    def run(n: int) -> Any:
        return expr.evaluate({"data": {"values": list(range(n))}})

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, range(1, 400)))
    assert results == [2 * (n - 1) + n for n in range(1, 400)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{{ input.orderId }}", 7),
        ("  {{ input.orderId }}\n", 7),
        ("{{ fetch.body.lines }}", SCOPE["fetch"]["body"]["lines"]),
        ("{{ input.none }}", None),
        ("{{ input.orderId > 5 }}", True),
        ("{{ {'a': {'b': 1}} }}", {"a": {"b": 1}}),
        ("{{ fetch['body'].tags[0] }}", "x"),
        ("{{ input.api }}/orders/{{ input.orderId }}", "https://api.test/orders/7"),
        ("{{ input.orderId }}{{ input.orderId }}", "77"),
        ("n={{ input.none }}.", "n=."),
        ("l={{ [1, 'a'] }}", 'l=[1,"a"]'),
        ("d={{ {'k': 1} }}", 'd={"k":1}'),
        ("b={{ True }} f={{ 1.5 }}", "b=True f=1.5"),
        ("plain text", "plain text"),
        ("closing }} alone", "closing }} alone"),
        ("", ""),
        (5, 5),
        (None, None),
        (
            {"a": ["{{ input.orderId }}", 2, {"b": "x{{ input.orderId }}"}], "c": "static"},
            {"a": [7, 2, {"b": "x7"}], "c": "static"},
        ),
    ],
)
def test_template_renders_raw_values_and_text(value: Any, expected: Any) -> None:
    assert compile_template(value).render(SCOPE) == expected


def test_static_template_renders_its_value_itself() -> None:
    value = {"a": [1, {"b": "no braces"}]}
    template = compile_template(value)
    assert template.is_static
    assert template.names == frozenset()
    assert template.render(SCOPE) is value


def test_dynamic_template_shares_static_parts_and_keeps_its_value() -> None:
    value = {"static": {"big": [1, 2]}, "dynamic": "{{ input.orderId }}"}
    template = compile_template(value)
    out = template.render(SCOPE)
    assert not template.is_static
    assert out == {"static": {"big": [1, 2]}, "dynamic": 7}
    assert out["static"] is value["static"]
    assert value["dynamic"] == "{{ input.orderId }}"


def test_template_lists_each_expression_with_its_location() -> None:
    template = compile_template({"a": ["x", "{{ n1.x }}"], "b": "{{ n2.y }}-{{ input.z }}"})
    assert template.names == {"n1", "n2", "input"}
    located = [(path, expr.source) for path, expr in template.expressions]
    assert located == [(("a", 1), "n1.x"), (("b",), "n2.y"), (("b",), "input.z")]


def test_bad_template_raises_naming_the_expression_and_its_place() -> None:
    with pytest.raises(ExpressionSyntaxError) as info:
        compile_template({"a": [{"b": "ok {{ 1 + }}"}]})
    assert info.value.path == ("a", 0, "b")
    assert info.value.expression == "1 +"
    assert "bad expression '1 +'" in str(info.value)


def test_bad_templates_are_all_collected_when_asked() -> None:
    errors: list[ExpressionSyntaxError] = []
    template = compile_template(
        {"a": "{{ a + }}", "b": "{{ ok.x }}", "c": "{{ f( }} and {{ g) }}", "d": "{{ open"},
        errors=errors,
    )
    assert [(e.path, e.expression) for e in errors] == [
        (("a",), "a +"),
        (("c",), "f("),
        (("c",), "g)"),
        (("d",), "{{ open"),
    ]
    assert "not closed" in errors[-1].message
    assert template.names == {"ok"}
    assert template.render({"ok": {"x": 1}}) == {
        "a": "{{ a + }}",
        "b": 1,
        "c": "{{ f( }} and {{ g) }}",
        "d": "{{ open",
    }


@pytest.mark.parametrize(
    ("value", "whole"),
    [
        ("{{ a }}", True),
        ("  {{ a.b[0] }}\t", True),
        ("{{ {'a': {'b': 1}} }}", True),
        ("{{ if }}", True),  # structure only: the expression itself may be bad
        ("x{{ a }}", False),
        ("{{ a }} {{ b }}", False),
        ("{{ a", False),
        ("a }}", False),
        ("plain", False),
        (7, False),
        (["{{ a }}"], False),
    ],
)
def test_is_whole_template(value: Any, whole: bool) -> None:
    assert is_whole_template(value) is whole


def test_rendered_text_is_capped_but_raw_values_are_not() -> None:
    scope = {"s": {"v": "x" * 600_000}}
    assert len(compile_template("{{ s.v }}").render(scope)) == 600_000
    with pytest.raises(ExpressionError, match="renders more than 1000000 characters"):
        compile_template("{{ s.v }}{{ s.v }}").render(scope)


def test_values_that_cannot_be_text_fail_as_expression_errors() -> None:
    scope = {"n": {"big": 10**5000}}
    with pytest.raises(ExpressionError, match=r"'n\.big' cannot be rendered as text"):
        compile_template("n={{ n.big }}").render(scope)
    with pytest.raises(ExpressionError, match="'n' cannot be rendered as text"):
        compile_template("n={{ n }}").render(scope)


def test_template_evaluation_error_names_the_expression() -> None:
    with pytest.raises(ExpressionError) as info:
        compile_template({"url": "{{ input.api }}/{{ input.nope }}"}).render(SCOPE)
    assert info.value.message == "expression 'input.nope' failed: no key 'nope' in input"


def test_ten_thousand_node_templates_compile_without_quadratic_work() -> None:
    values = [{"value": f"{{{{ node{i}.x }}}}", "n": i, "s": "text"} for i in range(10_000)]
    started = time.thread_time()  # CPU time: other processes on a busy machine do not count
    templates = [compile_template(v) for v in values]
    elapsed = time.thread_time() - started
    assert templates[42].render({"node42": {"x": "ok"}}) == {"value": "ok", "n": 42, "s": "text"}
    # Measured about 0.15 s of CPU on a slow 2 GHz VM; quadratic work would be ~100x that.
    assert elapsed < 1.5
