"""Regenerates the bundled price table, `shared/data/prices.json` (run by `make prices`).

Sources, in order of authority:
1. Our own entries, `shared/data/prices-ours.json`: prices checked by hand against each provider's
   page, with the date they were checked. They win over the datasets for the prices in force now.
2. genai-prices (PyPI, pydantic's maintained dataset): dated price versions, model-name patterns,
   batch / flex / priority variants, long-context tiers, audio and image rates.
3. litellm's `model_prices_and_context_window_backup.json` (from its wheel): a second opinion on
   every model both datasets know, and a large list of real model ids from many hosts, used by the
   coverage test (`shared/data/prices-coverage.json`, rewritten by the Rust test it feeds).

It prints a reviewable report: models added, removed and re-priced since the committed table, and
every model where two sources disagree by more than 1%. The build stays offline: the output is
committed and reviewed like code (docs/PRICING.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import zipfile
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "shared/data/prices.json"
OURS = ROOT / "shared/data/prices-ours.json"
CROSSCHECK = ROOT / "shared/data/prices-litellm.json"
LITELLM_PIN = Path(__file__).with_name("litellm.txt")

# Hosts in the order a name shared by several is resolved when the event's provider names none of
# them: the model's maker first, then the clouds and routers that resell it.
HOSTS = [
    "openai", "anthropic", "google", "mistral", "x-ai", "deepseek", "meta", "cohere",
    "moonshotai", "perplexity", "aws", "azure", "groq", "together", "fireworks", "cerebras",
    "openrouter",
]
# Our entries' provider names, as hosts.
OUR_HOST = {"amazon": "aws", "xai": "x-ai"}
# Token kinds we price, from genai-prices' keys (USD per million tokens).
RATE_KEYS = {
    "input_mtok": "input",
    "cache_read_mtok": "cached_input",
    "cache_write_mtok": "cache_write",
    "cache_write_1h_mtok": "cache_write_1h",
    "output_mtok": "output",
    "output_reasoning_mtok": "reasoning",
    "input_audio_mtok": "audio_input",
    "output_audio_mtok": "audio_output",
    "input_image_mtok": "image_input",
    "output_image_mtok": "image_output",
}
SERVICE_TIERS = {
    ("processing", "batch"): "batch",
    ("service_tier", "flex"): "flex",
    ("service_tier", "priority"): "priority",
}
# litellm's provider names, as hosts, for the cross-check.
LITELLM_HOST = {
    "openai": "openai", "anthropic": "anthropic", "gemini": "google",
    "vertex_ai-language-models": "google", "vertex_ai-anthropic_models": "google",
    "vertex_ai-mistral_models": "google", "vertex_ai-llama_models": "google",
    "mistral": "mistral", "xai": "x-ai", "deepseek": "deepseek", "bedrock": "aws",
    "bedrock_converse": "aws", "azure": "azure", "groq": "groq", "together_ai": "together",
    "fireworks_ai": "fireworks", "openrouter": "openrouter", "cohere_chat": "cohere",
    "perplexity": "perplexity", "cerebras": "cerebras",
}
# The provider string an application would send for each host, in the cross-check's events.
EVENT_PROVIDER = {"aws": "bedrock", "google": "vertex_ai", "x-ai": "xai"}
LITELLM_ROUTES = {
    "openai", "anthropic", "gemini", "vertex_ai", "mistral", "xai", "deepseek", "bedrock",
    "azure", "groq", "together_ai", "fireworks_ai", "openrouter", "cohere", "perplexity",
    "cerebras",
}
LITELLM_SUBROUTES = {"converse", "invoke", "us", "eu", "apac", "global"}


def usd(value) -> float | None:
    if value is None:
        return None
    return float(Decimal(value).quantize(Decimal("0.000001")).normalize())


def clause_names(clause) -> tuple[list[str], list[str]]:
    """Exact names and name prefixes a genai-prices match clause accepts (patterns it can't
    enumerate, such as regexes, are left to the model id and our decoration stripping)."""
    kind = type(clause).__name__
    if kind == "ClauseEquals":
        return [clause.equals.lower()], []
    if kind in ("ClauseStartsWith", "ClauseContains"):
        text = getattr(clause, "starts_with", None) or clause.contains
        return [], [text.lower()] if len(text) >= 4 else []
    if kind in ("ClauseOr", "ClauseAnd"):
        names, prefixes = [], []
        for c in getattr(clause, "or_", None) or clause.and_:
            n, p = clause_names(c)
            names += n
            prefixes += p
        return names, prefixes
    return [], []


def split_tiered(price):
    """(base USD/M, (threshold, USD/M) of the first tier or None, more tiers ignored?)."""
    if price is None:
        return None, None, False
    if type(price).__name__ == "TieredPrices":
        tiers = sorted(price.tiers, key=lambda t: t.start)
        first = (tiers[0].start, usd(tiers[0].price)) if tiers else None
        return usd(price.base), first, len(tiers) > 1
    return usd(price), None, False


def pricing_of(model_price, notes: set[str]) -> dict:
    """One genai-prices ModelPrice as our pricing: rates plus an optional long-context tier."""
    rates, long_rates, thresholds = {}, {}, set()
    for key, ours in RATE_KEYS.items():
        base, tier, more = split_tiered(getattr(model_price, key, None))
        if base is None:
            continue
        rates[ours] = base
        if tier:
            thresholds.add(tier[0])
            long_rates[ours] = tier[1]
        if more:
            notes.add("more than one context tier: only the first is modelled")
    for key, value in model_price.__dict__.items():
        if value is not None and key not in RATE_KEYS:
            notes.add(f"not per token, not modelled: {key}")
    out = dict(rates)
    if long_rates:
        if len(thresholds) > 1:
            notes.add(f"context tiers start at different sizes {sorted(thresholds)}: the lowest is used")
        out["long_context"] = {"threshold": min(thresholds), **{**rates, **long_rates}}
    return out


def scaled(pricing: dict, ratio: dict) -> dict:
    """A tier's prices for an older version, from the latest version's tier-to-standard ratios."""
    out = {k: round(v * ratio.get(k, 1.0), 6) for k, v in pricing.items() if k != "long_context"}
    if "long_context" in pricing:
        lc = pricing["long_context"]
        out["long_context"] = {"threshold": lc["threshold"], **{
            k: round(v * ratio.get(k, 1.0), 6) for k, v in lc.items() if k != "threshold"}}
    return out


def override(standard: dict, variant_price, notes: set[str]) -> dict:
    """Standard prices with a variant's (batch, flex, priority) prices put over them."""
    var = pricing_of(variant_price, notes)
    out = {**{k: v for k, v in standard.items() if k != "long_context"},
           **{k: v for k, v in var.items() if k != "long_context"}}
    if "long_context" in standard or "long_context" in var:
        base_lc = standard.get("long_context") or {"threshold": var["long_context"]["threshold"]}
        lc = {**{k: v for k, v in out.items()}, **base_lc}
        for k in out:
            if k in var and "long_context" not in var:
                # The variant names no tier: scale the standard tier by the same discount.
                if standard.get(k):
                    lc[k] = round(base_lc.get(k, standard[k]) * var[k] / standard[k], 6)
        if "long_context" in var:
            lc.update(var["long_context"])
        out["long_context"] = lc
    return out


def genai_models(today: str, version: str) -> dict[tuple[str, str], dict]:
    from genai_prices import data
    from genai_prices.types import ModelPrice

    out: dict[tuple[str, str], dict] = {}
    for provider in data.providers:
        if provider.id not in HOSTS:
            continue
        source = (provider.pricing_urls or [provider.api_pattern])[0]
        for m in provider.models:
            notes: set[str] = set()
            if isinstance(m.prices, ModelPrice):
                dated = [(None, m.prices)]
            else:
                dated = []
                for c in m.prices:
                    kind = type(c.constraint).__name__
                    if kind == "NoneType":
                        dated.append((None, c.prices))
                    elif kind == "StartDateConstraint":
                        start = c.constraint.start_date
                        dated.append((start.isoformat()[:10], c.prices))
                    else:
                        notes.add(f"not modelled: {kind} (time-of-day prices); standard prices used")
                dated.sort(key=lambda d: d[0] or "")
            versions = []
            for i, (start, price) in enumerate(dated):
                end = dated[i + 1][0] if i + 1 < len(dated) else None
                pricing = pricing_of(price, notes)
                if "input" not in pricing or "output" not in pricing:
                    continue
                versions.append({"effective_from": start, "effective_to": end, **pricing,
                                 "source": source, "checked": today,
                                 "dataset": f"genai-prices {version}"})
            if not versions:
                continue
            latest = versions[-1]
            tiers = {}
            for variant in m.price_variants or []:
                for key, value in variant.when.items():
                    tier = SERVICE_TIERS.get((key, value))
                    if tier:
                        std = {k: v for k, v in latest.items() if k in RATE_KEYS.values() or k == "long_context"}
                        tiers[tier] = override(std, variant.prices, notes)
            if tiers:
                for v in versions:
                    if v is latest:
                        v["tiers"] = tiers
                        continue
                    v["tiers"] = {}
                    for name, t in tiers.items():
                        ratio = {k: t[k] / latest[k] for k in t if k in RATE_KEYS.values() and latest.get(k)}
                        std = {k: x for k, x in v.items() if k in RATE_KEYS.values() or k == "long_context"}
                        v["tiers"][name] = scaled(std, ratio)
            names, prefixes = clause_names(m.match)
            out[(provider.id, m.id.lower())] = {
                "provider": provider.id,
                "model": m.id.lower(),
                "names": names,
                "prefixes": prefixes,
                "versions": versions,
                "notes": sorted(notes),
                "_match": m,
            }
    return out


def merge_ours(models: dict, flags: list[str]) -> None:
    ours = json.loads(OURS.read_text())["models"]
    # Exact ids claim their dataset entry first; a pattern match only takes an entry no other of
    # our entries names exactly (`gpt-5-codex` must not take over `gpt-5`).
    taken: set[int] = set()
    match: dict[int, dict | None] = {}
    for pass_ in ("exact", "pattern"):
        for n, entry in enumerate(ours):
            if n in match:
                continue
            host = OUR_HOST.get(entry["provider"], entry["provider"])
            ids = [entry["model"].lower()] + [a.lower() for a in entry["aliases"]]
            same_host = [m for (h, _), m in models.items()
                         if h == host and m["_match"] is not None and id(m) not in taken]
            if pass_ == "exact":
                found = next((m for m in same_host if m["model"] == ids[0]), None)
            else:
                found = next((m for m in same_host if m["model"] in ids), None) or next(
                    (m for m in same_host if m["_match"].is_match(ids[0])), None)
            if found is not None or pass_ == "pattern":
                match[n] = found
                if found is not None:
                    taken.add(id(found))
    for n, entry in enumerate(ours):
        host = OUR_HOST.get(entry["provider"], entry["provider"])
        ids = [entry["model"].lower()] + [a.lower() for a in entry["aliases"]]
        found = match[n]
        pricing = {
            "input": entry["input"], "output": entry["output"],
            **({"cached_input": entry["cached_input"]} if entry["cached_input"] is not None else {}),
            **({"cache_write": entry["cache_write"]} if entry["cache_write"] is not None else {}),
        }
        if entry.get("cache_write_1h") is not None:
            pricing["cache_write_1h"] = entry["cache_write_1h"]
        if entry["long_context"]:
            lc = entry["long_context"]
            pricing["long_context"] = {k: v for k, v in lc.items() if v is not None}
        if found is None:
            models[(host, entry["model"].lower())] = {
                "provider": host, "model": entry["model"].lower(), "names": ids, "prefixes": [],
                "versions": [{"effective_from": None, "effective_to": None, **pricing,
                              "source": entry["source"], "checked": entry["as_of"],
                              "dataset": "llmtrack"}],
                "notes": [], "_match": None,
            }
            continue
        latest = found["versions"][-1]
        for key in ("input", "cached_input", "cache_write", "output"):
            a, b = pricing.get(key), latest.get(key)
            if a is not None and b is not None and disagree(a, b):
                flags.append(f"{host}/{entry['model']}: {key} {a} (ours, checked {entry['as_of']}) "
                             f"vs {b} (genai-prices)")
        # Ours win for the prices in force now; the dataset's tiers keep their discount ratios.
        ratio_base = {k: latest[k] for k in RATE_KEYS.values() if latest.get(k)}
        std_keys = set(RATE_KEYS.values()) | {"long_context"}
        new_std = {k: v for k, v in latest.items() if k in std_keys}
        new_std.update(pricing)
        if "tiers" in latest:
            latest["tiers"] = {
                name: scaled(new_std, {k: t[k] / ratio_base[k] for k in t if k in ratio_base})
                for name, t in latest["tiers"].items()
            }
        for k in std_keys:
            latest.pop(k, None)
        latest.update(new_std)
        latest.update({"source": entry["source"], "checked": entry["as_of"],
                       "dataset": f"llmtrack, over {latest['dataset']}"})
        # Our id becomes the canonical one (stored events already name it); the dataset's is a name.
        if found["model"] not in ids:
            found["names"].append(found["model"])
        found["model"] = entry["model"].lower()
        found["names"] = ids + found["names"]


def disagree(a: float, b: float) -> bool:
    return abs(a - b) > 0.01 * max(abs(a), abs(b))


def litellm_data(cache: Path) -> tuple[dict, str]:
    pin = LITELLM_PIN.read_text().strip()
    version = pin.split("==")[1]
    wheels = list(cache.glob(f"litellm-{version}-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--only-binary=:all:", "-d", str(cache), pin], check=True)
        wheels = list(cache.glob(f"litellm-{version}-*.whl"))
    with zipfile.ZipFile(wheels[0]) as z:
        raw = z.read("litellm/model_prices_and_context_window_backup.json")
    return json.loads(raw), version


def litellm_rows(data: dict) -> list[dict]:
    """Real model ids from litellm, as an application would send them, with litellm's prices."""
    rows, seen = [], set()
    for key, v in data.items():
        if not isinstance(v, dict) or v.get("mode", "chat") not in ("chat", "responses", "completion"):
            continue
        host = LITELLM_HOST.get(v.get("litellm_provider"))
        if host is None or v.get("input_cost_per_token") is None or v.get("output_cost_per_token") is None:
            continue
        # litellm's own routing (`bedrock/`, `azure/eu/`, `bedrock/us-east-1/`), not the model's
        # name: `openrouter/openai/gpt-4o` is model `openai/gpt-4o` at OpenRouter.
        parts = key.split("/")
        if len(parts) > 1 and parts[0] in LITELLM_ROUTES:
            parts = parts[1:]
        while len(parts) > 1 and (parts[0] in LITELLM_SUBROUTES or "-" in parts[0] and parts[0][-1].isdigit()):
            parts = parts[1:]
        model = "/".join(parts)
        provider = EVENT_PROVIDER.get(host, host)
        if (provider, model.lower()) in seen:
            continue
        seen.add((provider, model.lower()))
        rows.append({"provider": provider, "model": model, "litellm_key": key,
                     "input": round(v["input_cost_per_token"] * 1e6, 6),
                     "output": round(v["output_cost_per_token"] * 1e6, 6)})
    rows.sort(key=lambda r: (r["provider"], r["model"].lower()))
    return rows


def crosscheck(models: dict, data: dict, flags: list[str]) -> None:
    prefix = {"aws": "bedrock/", "google": "vertex_ai/", "azure": "azure/", "groq": "groq/",
              "together": "together_ai/", "fireworks": "fireworks_ai/accounts/fireworks/models/",
              "openrouter": "openrouter/", "mistral": "mistral/", "x-ai": "xai/",
              "deepseek": "deepseek/", "google-ai": "gemini/"}
    for (host, mid), m in models.items():
        latest = m["versions"][-1]
        for name in [mid, *m["names"]]:
            other = data.get(prefix.get(host, "") + name) or (data.get(name) if host in ("openai", "anthropic") else None)
            if other and other.get("input_cost_per_token") is not None:
                for key, lkey in (("input", "input_cost_per_token"), ("output", "output_cost_per_token")):
                    b = round((other.get(lkey) or 0) * 1e6, 6)
                    if latest.get(key) is not None and disagree(latest[key], b):
                        flags.append(f"{host}/{mid}: {key} {latest[key]} (table) vs {b} (litellm `{name}`)")
                break


def complete_long_context(pricing: dict) -> None:
    """A long-context tier that leaves a kind out charges it at the standard rate scaled like the
    input rate (Anthropic doubles every input kind above 200k tokens, 1-hour writes included)."""
    lc = pricing.get("long_context")
    if not lc or not pricing.get("input"):
        return
    scale = lc["input"] / pricing["input"]
    for key in ("cached_input", "cache_write", "cache_write_1h", "audio_input", "image_input"):
        if key in pricing and key not in lc:
            lc[key] = round(pricing[key] * scale, 6)
    for tier in pricing.get("tiers", {}).values():
        complete_long_context(tier)


def render(table: dict) -> str:
    """One model a line, so a price change is a one-line diff."""
    head = {k: v for k, v in table.items() if k != "models"}
    lines = [json.dumps(m, separators=(",", ":"), sort_keys=False) for m in table["models"]]
    body = json.dumps(head, indent=1)[:-2]
    return body + ',\n "models": [\n' + ",\n".join(lines) + "\n ]\n}\n"


def report(old: dict | None, new: dict, flags: list[str]) -> None:
    key = lambda m: f"{m['provider']}/{m['model']}"  # noqa: E731
    before = {key(m): m for m in (old or {}).get("models", [])}
    after = {key(m): m for m in new["models"]}
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = [k for k in sorted(set(after) & set(before))
               if before[k]["versions"] != after[k]["versions"]]
    print(f"price table: {len(after)} models, {sum(len(m['names']) for m in new['models'])} names")
    print(f"  added {len(added)}, removed {len(removed)}, re-priced {len(changed)}")
    for k in added[:50]:
        print(f"  + {k}")
    for k in removed:
        print(f"  - {k}")
    for k in changed:
        a, b = before[k]["versions"][-1], after[k]["versions"][-1]
        diff = {f: (a.get(f), b.get(f)) for f in set(a) | set(b) if a.get(f) != b.get(f) and f != "checked"}
        print(f"  ~ {k}: {diff}")
    print(f"sources disagree by more than 1% on {len(flags)} prices (review each):")
    for f in flags:
        print(f"  ! {f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=ROOT / ".venv/prices-cache")
    parser.add_argument("--today", default=dt.date.today().isoformat())
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    from importlib.metadata import version as installed

    genai_version = installed("genai-prices")
    flags: list[str] = []
    models = genai_models(args.today, genai_version)
    merge_ours(models, flags)
    data, litellm_version = litellm_data(args.cache)
    crosscheck(models, data, flags)

    ordered = sorted(models.values(), key=lambda m: (HOSTS.index(m["provider"]), m["model"]))
    # A name (or prefix) resolves to one model per host: model ids first, then the names of our
    # own entries, then the datasets' in order. A name claimed twice goes to the first claimant.
    ids = {(m["provider"], m["model"]) for m in ordered}
    claimed: set[tuple[str, str, str]] = set()
    ours_first = sorted(ordered, key=lambda m: "llmtrack" not in m["versions"][-1]["dataset"])
    for m in ours_first:
        m.pop("_match", None)
        host = m["provider"]
        kept = []
        for n in m["names"]:
            if (host, n) in ids or (host, "name", n) in claimed:
                continue
            claimed.add((host, "name", n))
            kept.append(n)
        m["names"] = kept
        prefixes = []
        for p in sorted(set(m["prefixes"])):
            if (host, "prefix", p) not in claimed:
                claimed.add((host, "prefix", p))
                prefixes.append(p)
        m["prefixes"] = prefixes
        if not m["notes"]:
            del m["notes"]
        for v in m["versions"]:
            complete_long_context(v)
    table = {
        "schema": 2,
        "generated": args.today,
        "hosts": HOSTS,
        "datasets": [
            {"name": "llmtrack", "file": "shared/data/prices-ours.json"},
            {"name": "genai-prices", "version": genai_version,
             "url": f"https://pypi.org/project/genai-prices/{genai_version}/"},
            {"name": "litellm", "version": litellm_version, "use": "cross-check",
             "url": f"https://pypi.org/project/litellm/{litellm_version}/"},
        ],
        "disagreements": flags,
        "models": ordered,
    }
    old = json.loads(TABLE.read_text()) if TABLE.exists() else None
    if old and old.get("schema") != 2:
        old = None
    TABLE.write_text(render(table))
    rows = litellm_rows(data)
    CROSSCHECK.write_text(json.dumps({"litellm": litellm_version, "rows": rows}, indent=0) + "\n")
    report(old, table, flags)
    print(f"wrote {TABLE.relative_to(ROOT)} and {len(rows)} litellm ids to {CROSSCHECK.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
