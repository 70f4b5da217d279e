// Budget checks against a real `serve`: a feature's monthly budget allows, then warns past its
// warning share, then denies once spent (and `guard` rejects); budgets of other features do not
// apply; answers are cached for the TTL; a LLMtrack that cannot answer lets calls through (or
// throws when told to fail closed); a wrong key throws.

import { createServer } from "node:http";
import { createServer as createTcpServer, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, expect, test, vi } from "vitest";

import { BudgetCheckError, BudgetExceededError, Tracker, type BudgetCheck } from "../src/index.js";
import { Serve, freePort } from "./support.js";

const serve = new Serve();
beforeAll(() => serve.start());
afterAll(() => serve.stop());
afterEach(() => vi.restoreAllMocks());

const quiet = { onWarning: () => {} };

/** Records `n` calls costing `usd` in all, and waits until LLMtrack has them. */
async function spend(tracker: Tracker, usd: number, feature: string, n = 2): Promise<void> {
  for (let i = 0; i < n; i++) {
    tracker.record({ provider: "openai", model: "gpt-4o", input_tokens: 1000, output_tokens: 100, feature, cost_usd: usd / n });
  }
  expect(await tracker.flush(10_000)).toBe(true);
  expect(tracker.rejected).toBe(0);
}

const named = (check: BudgetCheck, name: string) => check.budgets.find((b) => b.name === name)!;

test("a feature's budget allows, then warns, then denies; other features' budgets do not apply", async () => {
  const ws = serve.workspace();
  const search = await ws.addBudget("Search", 10, { scope: { dimension: "feature", value: "search" }, warn_pct: 80 });
  await ws.addBudget("Chat", 1, { scope: { dimension: "feature", value: "chat" } });
  await ws.addBudget("TypeScript services", 100, { scope: { dimension: "source", value: "typescript" }, deny: false });
  const tracker = new Tracker({ apiKey: ws.key, baseUrl: ws.base, flushIntervalMs: 20, budgetCacheTtlMs: 0, ...quiet });

  let check = await tracker.checkBudget({ feature: "search", model: "gpt-4o", userId: "u-1" });
  expect([check.decision, check.allowed, check.error]).toEqual(["allow", true, undefined]);
  expect(check.budgets.map((b) => b.name).sort()).toEqual(["Search", "TypeScript services"]);
  const s = named(check, "Search");
  expect(s.id).toBe(search.id);
  expect(s.id.startsWith("bdg_")).toBe(true);
  expect(s.scope).toEqual({ dimension: "feature", value: "search" });
  expect([s.amountUsd, s.spentUsd, s.remainingUsd, s.usedPct, s.decision]).toEqual([10, 0, 10, 0, "allow"]);
  expect(s.periodEnd).toMatch(/Z$/);
  expect(check.remainingUsd).toBeCloseTo(10, 6);

  await spend(tracker, 5, "search");
  check = await tracker.guard({ feature: "search", model: "gpt-4o" });
  expect(check.decision).toBe("allow");
  expect(check.remainingUsd).toBeCloseTo(5, 6);

  await spend(tracker, 3.5, "search");
  check = await tracker.guard({ feature: "search" });
  expect([check.decision, check.allowed]).toEqual(["warn", true]);
  expect(named(check, "Search").spentUsd).toBeCloseTo(8.5, 6);
  expect(named(check, "Search").usedPct).toBeCloseTo(85, 6);
  expect(named(check, "Search").decision).toBe("warn");
  expect(check.remainingUsd).toBeCloseTo(1.5, 6);

  await spend(tracker, 2, "search");
  check = await tracker.checkBudget({ feature: "search" });
  expect([check.decision, check.allowed]).toEqual(["deny", false]);
  expect(check.remainingUsd).toBeLessThanOrEqual(0);
  const denied = await tracker.guard({ feature: "search", model: "gpt-4o", userId: "u-1" }).catch((e: unknown) => e);
  expect(denied).toBeInstanceOf(BudgetExceededError);
  expect((denied as BudgetExceededError).check.decision).toBe("deny");
  expect((denied as Error).message).toContain('"Search" is used up: $10.50 of $10.00');

  // Another feature's budget does not apply; the source's (which only warns) applies to all.
  const chat = await tracker.guard({ feature: "chat" });
  expect(chat.decision).toBe("allow");
  expect(chat.budgets.map((b) => b.name).sort()).toEqual(["Chat", "TypeScript services"]);
  expect(chat.remainingUsd).toBeCloseTo(1, 6);
  const whole = await tracker.checkBudget();
  expect(whole.budgets.map((b) => b.name)).toEqual(["TypeScript services"]);
  expect(whole.remainingUsd).toBeCloseTo(100 - 10.5, 6);
});

test("answers are cached for the TTL per model, feature and user", async () => {
  const ws = serve.workspace();
  const cached = new Tracker({ apiKey: ws.key, baseUrl: ws.base, flushIntervalMs: 20, budgetCacheTtlMs: 60_000, ...quiet });
  const fresh = new Tracker({ apiKey: ws.key, baseUrl: ws.base, budgetCacheTtlMs: 0, ...quiet });
  // A workspace without budgets allows everything.
  expect(await fresh.guard({ feature: "loop", model: "gpt-4o", userId: "u-1" })).toEqual({
    decision: "allow",
    allowed: true,
    remainingUsd: null,
    budgets: [],
  });
  await ws.addBudget("Loop", 1, { scope: { dimension: "feature", value: "loop" } });

  // Checks made at once share one request.
  const [first, same] = await Promise.all([cached.guard({ feature: "loop", userId: "u-1" }), cached.checkBudget({ feature: "loop", userId: "u-1" })]);
  expect(first.decision).toBe("allow");
  expect(same).toBe(first);
  await spend(cached, 2, "loop");
  expect((await fresh.checkBudget({ feature: "loop", userId: "u-1" })).decision).toBe("deny");

  expect(await cached.guard({ feature: "loop", userId: "u-1" })).toBe(first); // within the TTL: not asked again
  expect((await cached.checkBudget({ feature: "loop", userId: "u-2" })).decision).toBe("deny"); // another user
  expect((await cached.checkBudget({ feature: "loop", userId: "u-1", model: "gpt-4o" })).decision).toBe("deny"); // another model

  const now = Date.now();
  vi.spyOn(Date, "now").mockReturnValue(now + 60_000);
  await expect(cached.guard({ feature: "loop", userId: "u-1" })).rejects.toBeInstanceOf(BudgetExceededError);
  vi.restoreAllMocks();

  const second = await cached.checkBudget({ feature: "loop" });
  expect(await cached.checkBudget({ feature: "loop" })).toBe(second);
  cached.clearBudgetCache();
  expect(await cached.checkBudget({ feature: "loop" })).not.toBe(second);
});

test("checks fail open when LLMtrack cannot answer, or throw when told to fail closed", async () => {
  const ws = serve.workspace();
  const closed = `http://127.0.0.1:${await freePort()}`;
  const warnings: string[] = [];
  const tracker = new Tracker({ apiKey: ws.key, baseUrl: closed, budgetCacheTtlMs: 0, onWarning: (m) => warnings.push(m) });
  const checks = [];
  for (let i = 0; i < 3; i++) checks.push(await tracker.guard({ feature: "search" }));
  for (const c of checks) {
    expect([c.decision, c.allowed, c.budgets]).toEqual(["allow", true, []]);
    expect(c.error).toBeTruthy();
  }
  expect(warnings.filter((w) => w.includes("budget check failed"))).toHaveLength(1); // one warning per outage

  const strictClosed = new Tracker({ apiKey: ws.key, baseUrl: closed, failOpen: false, ...quiet });
  const refused = await strictClosed.guard({ feature: "search" }).catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(BudgetCheckError);
  expect((refused as BudgetCheckError).status).toBeUndefined();

  // A 5xx is LLMtrack not answering too; the fallback is cached like an answer, so a down
  // LLMtrack is asked once per TTL, not once per call.
  let requests = 0;
  const broken = createServer((_req, res) => {
    requests += 1;
    res.writeHead(503, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: { code: "unavailable", message: "try later" } }));
  });
  await new Promise<void>((r) => broken.listen(0, "127.0.0.1", () => r()));
  const brokenBase = `http://127.0.0.1:${(broken.address() as AddressInfo).port}`;
  try {
    const t = new Tracker({ apiKey: ws.key, baseUrl: brokenBase, budgetCacheTtlMs: 60_000, ...quiet });
    const first = await t.checkBudget({ feature: "search" });
    expect(first.allowed).toBe(true);
    expect(first.error).toContain("503");
    expect(first.error).toContain("try later");
    expect(await t.checkBudget({ feature: "search" })).toBe(first);
    expect(requests).toBe(1);
    const strict = new Tracker({ apiKey: ws.key, baseUrl: brokenBase, failOpen: false, ...quiet });
    const e = (await strict.checkBudget().catch((x: unknown) => x)) as BudgetCheckError;
    expect(e).toBeInstanceOf(BudgetCheckError);
    expect([e.status, e.code]).toEqual([503, "unavailable"]);
  } finally {
    broken.close();
  }

  // A server that takes the connection and never answers: the check waits `budgetTimeoutMs`.
  const sockets: Socket[] = [];
  const silent = createTcpServer((s) => void sockets.push(s));
  await new Promise<void>((r) => silent.listen(0, "127.0.0.1", () => r()));
  try {
    const t = new Tracker({ apiKey: ws.key, baseUrl: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`, budgetTimeoutMs: 300, ...quiet });
    const started = Date.now();
    const check = await t.guard({ feature: "search" });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(check.allowed).toBe(true);
    expect(check.error).toContain("no answer within 300 ms");
  } finally {
    for (const s of sockets) s.destroy();
    silent.close();
  }
});

test("a wrong key, or a key of another scope, throws even when failing open", async () => {
  const ws = serve.workspace();
  const bad = new Tracker({ apiKey: "llmt_not_a_key", baseUrl: ws.base, budgetCacheTtlMs: 60_000, ...quiet });
  for (const call of [() => bad.checkBudget({ feature: "search" }), () => bad.guard({ feature: "search" })]) {
    const e = (await call().catch((x: unknown) => x)) as BudgetCheckError;
    expect(e).toBeInstanceOf(BudgetCheckError);
    expect(e.status).toBe(401);
    expect(e.code).toBeTruthy();
    expect(e.message).toContain("401");
  }
  const readOnly = new Tracker({ apiKey: ws.readKey, baseUrl: ws.base, ...quiet });
  const e = (await readOnly.checkBudget({ feature: "search" }).catch((x: unknown) => x)) as BudgetCheckError;
  expect(e).toBeInstanceOf(BudgetCheckError);
  expect(e.status).toBe(403);
});
