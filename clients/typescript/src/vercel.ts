// The Vercel AI SDK: `onFinish` of `generateText` and `streamText` gives every step's usage;
// each step is one call to the model, so each becomes one event.

import type { Labels, UsageEvent } from "./events.js";
import type { Tracker } from "./tracker.js";

type Loose = Record<string, unknown> | undefined;

function n(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? Math.floor(value) : 0;
}

/**
 * One AI SDK step (or a finish event without steps) as an event. Reads the AI SDK 5 and 6
 * usage (`inputTokens`, `inputTokenDetails`, `outputTokenDetails`) and 4's
 * (`promptTokens`, `completionTokens`). The provider is the SDK's (`openai.chat` → `openai`).
 */
export function fromVercelStep(step: unknown, labels: Labels = {}): UsageEvent {
  const s = (step ?? {}) as Record<string, unknown>;
  const usage = (s.usage ?? {}) as Record<string, unknown>;
  const model = (s.model ?? {}) as Loose;
  const response = (s.response ?? {}) as Loose;
  const inDetails = (usage.inputTokenDetails ?? {}) as Record<string, unknown>;
  const outDetails = (usage.outputTokenDetails ?? {}) as Record<string, unknown>;
  const cached = n(inDetails.cacheReadTokens) || n(usage.cachedInputTokens);
  const cacheWrite = n(inDetails.cacheWriteTokens);
  const input = Math.max(
    n(usage.inputTokens) || n(usage.promptTokens),
    n(inDetails.noCacheTokens) + cached + cacheWrite,
  );
  const output = n(usage.outputTokens) || n(usage.completionTokens);
  const reasoning = n(outDetails.reasoningTokens) || n(usage.reasoningTokens);
  const provider = labels.provider ?? String(model?.provider ?? "unknown").split(".")[0];
  const e: UsageEvent = {
    provider,
    model: String(response?.modelId ?? model?.modelId ?? "unknown"),
    input_tokens: input,
    output_tokens: output,
  };
  if (typeof response?.id === "string" && response.id.length <= 128) e.id = response.id;
  if (cached) e.cached_input_tokens = cached;
  if (cacheWrite) e.cache_write_tokens = cacheWrite;
  if (reasoning) e.reasoning_tokens = Math.min(reasoning, output);
  if (labels.feature !== undefined) e.feature = labels.feature;
  if (labels.userId !== undefined) e.user_id = labels.userId;
  if (labels.latencyMs !== undefined) e.latency_ms = labels.latencyMs;
  if (labels.metadata !== undefined) e.metadata = labels.metadata;
  return e;
}

/**
 * An `onFinish` callback for `generateText` / `streamText` that records one event per step:
 * `generateText({ model, prompt, onFinish: onFinish(tracker, { feature: "chat" }) })`.
 */
export function onFinish(tracker: Tracker, labels: Labels = {}): (event: unknown) => void {
  return (event: unknown) => {
    try {
      const e = (event ?? {}) as { steps?: unknown[] };
      const steps = Array.isArray(e.steps) && e.steps.length > 0 ? e.steps : [event];
      for (const step of steps) tracker.record(fromVercelStep(step, labels));
    } catch {
      // Never into the caller's code.
    }
  };
}
