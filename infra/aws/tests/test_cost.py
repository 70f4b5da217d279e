"""docs/COST.md against the cost model, and the model's arithmetic."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import cfn  # noqa: E402
import cost  # noqa: E402


def test_cost_md_is_what_the_script_computes():
    doc = cost.COST_MD.read_text()
    block = doc[doc.index(cost.BEGIN) + len(cost.BEGIN) : doc.index(cost.END)].strip()
    expected = cost.render(json.loads(cost.INPUTS.read_text()), cfn.load()).strip()
    assert block == expected, "docs/COST.md is stale: run `python infra/aws/cost.py --write`"


def test_inputs_cover_each_volume_the_doc_prices():
    inputs = json.loads(cost.INPUTS.read_text())
    volumes = {p["monthly_events"] for p in inputs["profiles"]}
    assert volumes == set(cost.DASHBOARD_VIEWS)
    for p in inputs["profiles"]:
        # One event item per event is the floor of the write cost.
        assert p["wcu_per_event"] >= 1.0
        assert 0 < p["event_item_bytes"] < 1024
        assert p["cpu_ms_per_batch"] > 0


def test_competitor_tiers():
    assert cost.langfuse(100_000) == 29.0
    assert round(cost.langfuse(1_000_000), 2) == 29.0 + 900_000 * 8e-5
    assert cost.helicone(10_000) == 0.0
    assert round(cost.helicone(30_000), 2) == 14.0
    assert round(cost.helicone(3_500_000) - cost.helicone(2_500_000), 2) == 20.0


def test_the_bill_grows_with_volume_and_each_line_is_positive():
    template = cfn.load()
    profile = {"batch": 100, "batches_per_compaction": 23, "cpu_ms_per_batch": 2.0, "wcu_per_event": 1.2, "event_item_bytes": 400}
    small = cost.bill(10_000_000, profile, template)
    large = cost.bill(100_000_000, profile, template)
    assert all(line.usd > 0 for line in small)
    assert sum(line.usd for line in large) > 5 * sum(line.usd for line in small)
    # Writes are priced per unit: 100 million events at 1.2 units is $75.
    writes = next(line for line in large if line.what.startswith("writes"))
    assert round(writes.usd, 2) == 75.0
