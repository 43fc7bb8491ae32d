"""The docs travel with the code: generated parts match it, links resolve, codes are listed."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from app.docgen import DocsOutOfDate, main, render_nodes, render_transitions, replace_block
from app.nodes.base import BaseNode, NodeContext, Params
from app.nodes.builtin import builtin_types

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
DOC_FILES = (
    "workflows.md", "nodes.md", "expressions.md", "retry-and-timeouts.md", "lifecycle.md",
    "errors.md", "flow-control.md",
)  # fmt: skip
# Codes that never reach a user: the base class's default, and a runner's internal signal.
INTERNAL_CODES = {"error", "lease_lost"}
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
CODE_PATTERNS = (
    re.compile(r'\bcode\s*=\s*"([a-z][a-z0-9_]*)"'),
    re.compile(r'"code":\s*"([a-z][a-z0-9_]*)"'),
    re.compile(r'error_body\(\s*"([a-z][a-z0-9_]*)"'),
    re.compile(r'\b[45]\d\d:\s*"([a-z][a-z0-9_]*)"'),  # status -> code tables
    # Problem(loc, "code", ...) and Checker.add(loc, "code", ...): loc is a name or a tuple.
    re.compile(r'(?:self\.add|Problem)\(\s*(?:\([^()]*\)|\w+)\s*,\s*"([a-z][a-z0-9_]*)"'),
)


def test_committed_node_reference_is_what_the_params_models_generate() -> None:
    committed = (DOCS / "nodes.md").read_text(encoding="utf-8")

    assert committed == render_nodes(), "docs/nodes.md is stale: run python -m app.docgen"


def test_committed_transition_table_is_the_one_in_app_engine_status() -> None:
    committed = (DOCS / "lifecycle.md").read_text(encoding="utf-8")

    assert committed == replace_block(committed, "transitions", render_transitions())
    assert "| `completed` | - | yes |" in committed


class ExtraParams(Params):
    value: Any = None
    undocumented: int = 0


class ChangedNoop(BaseNode):
    """A `noop` whose params model grew a field the notes do not describe."""

    name: ClassVar[str] = "noop"
    params_model: ClassVar[type[BaseModel]] = ExtraParams

    async def run(self, ctx: NodeContext, params: Any) -> Any:
        return None


class UnknownBuiltin(ChangedNoop):
    name: ClassVar[str] = "brand.new"


def test_docgen_refuses_a_param_without_a_note() -> None:
    others = [t for t in builtin_types() if t.name != "noop"]

    with pytest.raises(DocsOutOfDate, match="undocumented"):
        render_nodes([*others, ChangedNoop()])


def test_docgen_refuses_a_type_without_notes() -> None:
    with pytest.raises(DocsOutOfDate, match=r"brand\.new"):
        render_nodes([*builtin_types(), UnknownBuiltin()])


def test_docgen_check_fails_on_a_stale_file_until_regenerated(tmp_path: Path) -> None:
    shutil.copy(DOCS / "lifecycle.md", tmp_path / "lifecycle.md")
    (tmp_path / "nodes.md").write_text("# Node types\n\nhand-edited\n", encoding="utf-8")

    assert main(["--docs", str(tmp_path), "--check"]) == 1
    assert main(["--docs", str(tmp_path)]) == 0
    assert main(["--docs", str(tmp_path), "--check"]) == 0
    assert (tmp_path / "nodes.md").read_text(encoding="utf-8") == render_nodes()


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", *(DOCS / name for name in DOC_FILES)]


def test_readme_and_docs_point_only_inside_the_repository() -> None:
    for path in _markdown_files():
        text = path.read_text(encoding="utf-8")
        assert "../shared" not in text, path.name
        assert "DESIGN.md" not in text, path.name
        for target in LINK.findall(text):
            if target.startswith(("http://", "https://")):
                continue
            assert (path.parent / target).exists(), f"{path.name} links a missing {target}"


def test_readme_lists_every_document() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Documentation", 1)[1].split("\n## ", 1)[0]

    for name in DOC_FILES:
        assert f"(docs/{name})" in section, name


def _codes_in_app() -> set[str]:
    codes: set[str] = set()
    for path in (ROOT / "app").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for pattern in CODE_PATTERNS:
            codes.update(pattern.findall(text))
    return codes - INTERNAL_CODES


def test_every_error_code_in_the_code_is_in_docs_errors() -> None:
    documented = (DOCS / "errors.md").read_text(encoding="utf-8")
    codes = _codes_in_app()

    assert {"workflow_invalid", "invalid_transition", "http_status", "cycle"} <= codes
    missing = sorted(c for c in codes if f"`{c}`" not in documented)
    assert not missing, f"codes missing from docs/errors.md: {missing}"
