"""`turnout validate | analyze | graph`: no server needed."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import turnout, write
from tests.cli.test_cli import BAD
from tests.client.conftest import APPROVAL, HELLO


def test_validate_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    bad = turnout("validate", write(tmp_path / "b.json", BAD), "-o", "json")
    assert bad.returncode == 2
    report = json.loads(bad.stdout)
    assert report["valid"] is False
    assert sorted(p["code"] for p in report["problems"]) == ["cycle", "unknown_type"]
    assert "cycle: a -> b -> a" in bad.stderr
    good = turnout("validate", write(tmp_path / "h.json", HELLO))
    assert good.returncode == 0 and "valid, 1 nodes" in good.stdout
    broken = turnout("validate", write(tmp_path / "x.json", []))
    assert broken.returncode == 2
    (tmp_path / "n.json").write_text("{nope")
    assert turnout("validate", str(tmp_path / "n.json")).returncode == 2
    assert turnout("validate", str(tmp_path / "missing.json")).returncode == 2


def test_analyze_says_what_auto_would_choose(tmp_path: Path) -> None:
    simple = json.loads(turnout("analyze", write(tmp_path / "h.json", HELLO), "-o", "json").stdout)
    assert simple["recommendedMode"] == "immediate" and simple["nodeCount"] == 1
    human = turnout("analyze", write(tmp_path / "a.json", APPROVAL))
    assert human.returncode == 0
    assert "needs human input" in human.stdout and "queued" in human.stdout


def test_graph_as_text_mermaid_and_json(tmp_path: Path) -> None:
    diamond = {
        "nodes": [
            {"id": "a", "type": "noop"},
            {"id": "b", "type": "noop", "dependsOn": ["a"]},
            {"id": "c", "type": "noop", "dependsOn": ["a"]},
            {"id": "d", "type": "noop", "dependsOn": ["b", "c"]},
        ]
    }
    file = write(tmp_path / "g.json", diamond)
    text = turnout("graph", file).stdout.splitlines()
    assert text == ["a (noop) -> b, c", "b (noop) -> d", "c (noop) -> d", "d (noop)"]
    mermaid = turnout("graph", file, "--format", "mermaid").stdout
    assert mermaid.startswith("flowchart TD\n") and "  b --> d\n" in mermaid
    graph = json.loads(turnout("graph", file, "-o", "json").stdout)
    assert sorted(map(tuple, graph["edges"])) == [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]
