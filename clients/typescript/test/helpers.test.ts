// The helpers applied to what the real `openai` and `@anthropic-ai/sdk` packages return from
// local fakes, and the AI SDK's onFinish with its own mock model: the events `serve` stores say
// exactly what the usage said.

import Anthropic from "@anthropic-ai/sdk";
import { generateText } from "ai";
import { MockLanguageModelV3 } from "ai/test";
import OpenAI from "openai";
import { afterAll, beforeAll, expect, test } from "vitest";

import { Tracker, fromAnthropic, fromOpenAI, onFinish } from "../src/index.js";
import { ANTHROPIC_USAGE, CHAT_USAGE, RESPONSES_USAGE, Serve, fakeProviders } from "./support.js";

const serve = new Serve();
let providers: Awaited<ReturnType<typeof fakeProviders>>;

beforeAll(async () => {
  await serve.start();
  providers = await fakeProviders();
});
afterAll(() => {
  serve.stop();
  providers.server.close();
});

test("OpenAI and Anthropic responses become events with the tokens in LLMtrack's meaning", async () => {
  const ws = serve.workspace();
  const tracker = new Tracker({ apiKey: ws.key, baseUrl: ws.base, flushIntervalMs: 20 });
  const openai = new OpenAI({ baseURL: `${providers.base}/v1`, apiKey: "sk-test", maxRetries: 0 });
  const anthropic = new Anthropic({ baseURL: providers.base, apiKey: "sk-ant-test", maxRetries: 0 });

  const chat = await openai.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "Hi" }] });
  const response = await openai.responses.create({ model: "o4-mini", input: "Hi" });
  const message = await anthropic.messages.create({ model: "claude-sonnet-4-6", max_tokens: 100, messages: [{ role: "user", content: "Hi" }] });
  const labels = { feature: "summarize", userId: "u-42" };
  tracker.record(fromOpenAI(chat, labels));
  tracker.record(fromOpenAI(response, labels));
  tracker.record(fromAnthropic(message, labels));
  expect(await tracker.flush(10_000)).toBe(true);

  const events = await ws.events();
  expect(events).toHaveLength(3);
  const byId = Object.fromEntries(events.map((e) => [e.id, e]));
  const c = byId[chat.id];
  expect([c.model_canonical, c.input_tokens, c.cached_input_tokens, c.output_tokens]).toEqual([
    "gpt-4o", CHAT_USAGE.prompt_tokens, 1920, CHAT_USAGE.completion_tokens,
  ]);
  expect([c.feature, c.user_id, c.source, c.cost_source]).toEqual(["summarize", "u-42", "typescript", "table"]);
  // gpt-4o: $2.50 a million input, $1.25 cached, $10 output.
  expect(c.cost_usd).toBeCloseTo((86 * 2.5 + 1920 * 1.25 + 300 * 10) / 1e6, 12);
  const r = byId[response.id];
  expect([r.input_tokens, r.cached_input_tokens, r.output_tokens, r.reasoning_tokens]).toEqual([
    RESPONSES_USAGE.input_tokens, 1024, 500, 384,
  ]);
  const m = byId[message.id];
  const u = ANTHROPIC_USAGE;
  expect([m.input_tokens, m.cached_input_tokens, m.cache_write_tokens, m.cache_write_1h_tokens, m.output_tokens]).toEqual([
    u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens, 3000, 1000, 600, 120,
  ]);
  expect(m.model_canonical).toBe("claude-sonnet-4-6");
  await tracker.close();
});

test("the AI SDK's onFinish records one event per step", async () => {
  const ws = serve.workspace();
  const tracker = new Tracker({ apiKey: ws.key, baseUrl: ws.base, flushIntervalMs: 20 });
  const model = new MockLanguageModelV3({
    provider: "openai.chat",
    modelId: "gpt-4o",
    doGenerate: {
      content: [{ type: "text", text: "Hello there." }],
      finishReason: { unified: "stop", raw: "stop" },
      usage: {
        inputTokens: { total: 2006, noCache: 86, cacheRead: 1920, cacheWrite: 0 },
        outputTokens: { total: 300, text: 300, reasoning: 0 },
      },
      response: { id: "aisdk-1", modelId: "gpt-4o-2024-08-06", timestamp: new Date() },
      warnings: [],
    },
  });
  const result = await generateText({ model, prompt: "Hi", onFinish: onFinish(tracker, { feature: "chat" }) });
  expect(result.text).toBe("Hello there.");
  expect(await tracker.flush(10_000)).toBe(true);
  const [e] = await ws.events();
  expect([e.id, e.provider, e.model, e.input_tokens, e.cached_input_tokens, e.output_tokens, e.feature]).toEqual([
    "aisdk-1", "openai", "gpt-4o-2024-08-06", 2006, 1920, 300, "chat",
  ]);
  await tracker.close();
});
