"""The Grafana dashboard in the repository queries only metrics that Turnout exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

import app.metrics as metrics

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "turnout.json"


def test_every_panel_queries_a_metric_turnout_exports() -> None:
    exported = set()
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        for family in value.describe():
            exported |= {family.name, f"{family.name}_total", f"{family.name}_bucket"}
            exported |= {f"{family.name}_count", f"{family.name}_sum"}
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names = set(re.findall(r"turnout_[a-z_]+", target["expr"]))
            assert names and names <= exported, (panel["title"], names - exported)
