// The sender against a real `serve`: it outlasts the server being down, resends with the same
// ids when an answer is lost (nothing counted twice), keeps its queue bounded, and never throws.

import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, expect, test } from "vitest";

import { Tracker } from "../src/index.js";
import { randomId } from "../src/tracker.js";
import { Serve, freePort } from "./support.js";

const serve = new Serve();
beforeAll(() => serve.start());
afterAll(() => serve.stop());

const quiet = { onWarning: () => {} };

/** Forwards to `serve`; the first `lose` answers are cut off after `serve` stored the events. */
function flakyProxy(port: number, target: string, lose: number): Promise<{ server: Server; forwarded: () => number }> {
  let forwarded = 0;
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", async () => {
      const r = await fetch(`${target}${req.url}`, {
        method: "POST",
        body,
        headers: { "content-type": "application/json", authorization: String(req.headers.authorization) },
      });
      const text = await r.text();
      forwarded += 1;
      if (lose > 0) {
        lose -= 1;
        req.socket.destroy();
        return;
      }
      res.writeHead(r.status, { "content-type": "application/json" });
      res.end(text);
    });
  });
  return new Promise((r) => server.listen(port, "127.0.0.1", () => r({ server, forwarded: () => forwarded })));
}

test("events wait out a down server, and a lost answer is not counted twice", async () => {
  const ws = serve.workspace();
  const port = await freePort();
  const tracker = new Tracker({ apiKey: ws.key, baseUrl: `http://127.0.0.1:${port}`, batchSize: 20, flushIntervalMs: 20, maxBackoffMs: 200, ...quiet });
  const ids = Array.from({ length: 50 }, (_, i) =>
    tracker.record({ provider: "openai", model: "gpt-4o", input_tokens: 100 + i, output_tokens: 10 }),
  );
  expect(new Set(ids).size).toBe(50);
  await new Promise((r) => setTimeout(r, 800));
  expect([tracker.pending, tracker.delivered]).toEqual([50, 0]);

  const proxy = await flakyProxy(port, ws.base, 2);
  try {
    expect(await tracker.flush(20_000)).toBe(true);
  } finally {
    proxy.server.close();
  }
  expect(proxy.forwarded()).toBeGreaterThanOrEqual(5);
  const events = await ws.events();
  expect(events.map((e) => e.id).sort()).toEqual([...ids].sort());
  expect(events.reduce((s, e) => s + e.input_tokens, 0)).toBe(50 * 100 + (49 * 50) / 2);
  expect([tracker.delivered, tracker.rejected, tracker.dropped]).toEqual([50, 0, 0]);
  await tracker.close(1000);
});

test("the queue is bounded, refusals are counted, and recording never throws", async () => {
  const ws = serve.workspace();
  const port = await freePort();
  const down = new Tracker({ apiKey: ws.key, baseUrl: `http://127.0.0.1:${port}`, maxQueue: 10, flushIntervalMs: 20, ...quiet });
  const kept = Array.from({ length: 15 }, () => down.record({ provider: "openai", model: "gpt-4o", input_tokens: 1 }));
  expect(kept.filter(Boolean)).toHaveLength(10);
  expect(down.dropped).toBe(5);
  expect(down.record(null as never)).toBeUndefined();
  expect(await down.flush(300)).toBe(false);

  const up = new Tracker({ apiKey: ws.key, baseUrl: ws.base, flushIntervalMs: 20, ...quiet });
  up.record({ provider: "openai", model: "gpt-4o", input_tokens: 5 });
  up.record({ provider: "openai", model: "gpt-4o", input_tokens: -1 });
  expect(await up.flush(10_000)).toBe(true);
  expect([up.delivered, up.rejected]).toEqual([1, 1]);
  expect(await ws.events()).toHaveLength(1);
  await up.close();
});

test("generated ids are letters only, so none can look like a card number", () => {
  const ids = new Set(Array.from({ length: 2000 }, () => randomId()));
  expect(ids.size).toBe(2000);
  for (const id of ids) expect(id).toMatch(/^ts_[a-z]{26}$/);
});
