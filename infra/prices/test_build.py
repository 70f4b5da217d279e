"""The price table generator's conversions, on genai-prices' own types (no network)."""

from decimal import Decimal

from genai_prices.types import (
    ClauseAnd,
    ClauseContains,
    ClauseEquals,
    ClauseOr,
    ClauseRegex,
    ClauseStartsWith,
    ModelPrice,
    TieredPrices,
    Tier,
)

import build


def test_match_clauses_become_names_and_prefixes():
    clause = ClauseOr(or_=[
        ClauseEquals(equals="GPT-4o"),
        ClauseStartsWith(starts_with="gpt-4o-2024"),
        ClauseAnd(and_=[ClauseContains(contains="nova-lite"), ClauseRegex(regex="^(?!x)")]),
    ])
    names, prefixes = build.clause_names(clause)
    assert names == ["gpt-4o"]
    assert prefixes == ["gpt-4o-2024", "nova-lite"]


def test_tiered_prices_become_a_long_context_tier():
    notes = set()
    price = ModelPrice(
        input_mtok=TieredPrices(base=Decimal("3"), tiers=[Tier(start=200_000, price=Decimal("6"))]),
        output_mtok=TieredPrices(base=Decimal("15"), tiers=[Tier(start=200_000, price=Decimal("22.5"))]),
        cache_read_mtok=Decimal("0.3"),
        cache_write_1h_mtok=Decimal("6"),
        web_searches_kcount=Decimal("10"),
    )
    pricing = build.pricing_of(price, notes)
    assert pricing["input"] == 3 and pricing["cache_write_1h"] == 6
    assert pricing["long_context"]["threshold"] == 200_000
    assert pricing["long_context"]["output"] == 22.5
    assert "not per token, not modelled: web_searches_kcount" in notes
    # genai-prices' untiered prices are flat: the same above the threshold.
    assert pricing["long_context"]["cached_input"] == 0.3


def test_our_long_context_tiers_scale_the_kinds_they_leave_out_like_input():
    pricing = {"input": 3, "cached_input": 0.3, "cache_write_1h": 6, "output": 15,
               "long_context": {"threshold": 200_000, "input": 6, "output": 22.5}}
    build.complete_long_context(pricing)
    assert pricing["long_context"]["cached_input"] == 0.6
    assert pricing["long_context"]["cache_write_1h"] == 12
    assert pricing["long_context"]["output"] == 22.5


def test_a_variant_overrides_only_the_prices_it_names():
    standard = {"input": 2.5, "cached_input": 1.25, "output": 10}
    batch = build.override(standard, ModelPrice(input_mtok=Decimal("1.25"), output_mtok=Decimal("5")), set())
    assert batch == {"input": 1.25, "cached_input": 1.25, "output": 5}


def test_an_older_version_gets_its_tiers_by_the_latest_ratios():
    older = {"input": 10, "output": 40}
    assert build.scaled(older, {"input": 0.5, "output": 0.5}) == {"input": 5, "output": 20}


def test_sources_disagree_beyond_one_percent():
    assert not build.disagree(3.0, 3.02)
    assert build.disagree(3.0, 3.1)


def test_litellm_ids_lose_litellm_routing_but_keep_the_model_name():
    rows = build.litellm_rows({
        "bedrock/us-east-1/meta.llama3-70b-instruct-v1:0": {
            "litellm_provider": "bedrock", "mode": "chat",
            "input_cost_per_token": 2.65e-06, "output_cost_per_token": 3.5e-06},
        "openrouter/openai/gpt-4o": {
            "litellm_provider": "openrouter", "mode": "chat",
            "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05},
        "dall-e-3": {"litellm_provider": "openai", "mode": "image_generation"},
        "sample_spec": {"litellm_provider": "openai"},
    })
    assert [(r["provider"], r["model"], r["input"]) for r in rows] == [
        ("bedrock", "meta.llama3-70b-instruct-v1:0", 2.65),
        ("openrouter", "openai/gpt-4o", 2.5),
    ]


def test_the_table_renders_one_model_a_line():
    text = build.render({"schema": 2, "models": [{"model": "a"}, {"model": "b"}]})
    lines = text.splitlines()
    assert '{"model":"a"},' in lines and '{"model":"b"}' in lines
