// Provider responses to LLMtrack usage events (the `POST /v1/events` contract, docs/INGEST.md).
// `input_tokens` counts every input token, cache reads and writes included; `output_tokens`
// every output token, reasoning included; the parts are named beside them. Providers count
// differently (Anthropic reports cache reads and writes beside its `input_tokens`), which is
// why these helpers exist.

/** One usage event, as `POST /v1/events` takes it. */
export interface UsageEvent {
  id?: string;
  timestamp?: string | number;
  provider: string;
  model: string;
  feature?: string;
  user_id?: string;
  input_tokens?: number;
  output_tokens?: number;
  cached_input_tokens?: number;
  cache_write_tokens?: number;
  cache_write_1h_tokens?: number;
  reasoning_tokens?: number;
  audio_input_tokens?: number;
  audio_output_tokens?: number;
  service_tier?: string;
  cost_usd?: number;
  provider_cost_usd?: number;
  latency_ms?: number;
  status?: "success" | "error";
  error_type?: string;
  metadata?: Record<string, string | number | boolean>;
}

/** What a caller adds to an event made from a response. */
export interface Labels {
  provider?: string;
  feature?: string;
  userId?: string;
  latencyMs?: number;
  metadata?: Record<string, string | number | boolean>;
}

const SERVICE_TIERS = new Set(["standard", "default", "auto", "on_demand", "scale", "batch", "flex", "priority"]);

type Loose = Record<string, unknown> | null | undefined;

function n(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? Math.floor(value) : 0;
}

function obj(value: unknown): Loose {
  return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : undefined;
}

function event(provider: string, model: unknown, id: unknown, labels: Labels, counts: Partial<UsageEvent>): UsageEvent {
  const e: UsageEvent = { provider, model: typeof model === "string" && model ? model : "unknown" };
  if (typeof id === "string" && id.length > 0 && id.length <= 128) e.id = id;
  for (const [key, value] of Object.entries(counts)) {
    if (key === "service_tier") {
      if (typeof value === "string" && SERVICE_TIERS.has(value.toLowerCase())) e.service_tier = value.toLowerCase();
    } else if (key === "provider_cost_usd") {
      if (typeof value === "number" && value >= 0) e.provider_cost_usd = value;
    } else if (value) {
      (e as unknown as Record<string, unknown>)[key] = value;
    }
  }
  if (labels.feature !== undefined) e.feature = labels.feature;
  if (labels.userId !== undefined) e.user_id = labels.userId;
  if (labels.latencyMs !== undefined) e.latency_ms = labels.latencyMs;
  if (labels.metadata !== undefined) e.metadata = labels.metadata;
  return e;
}

/**
 * An OpenAI Chat Completions or Responses result (or a streamed chunk carrying `usage`, or any
 * OpenAI-compatible API's: pass `provider: "openrouter"`, ...). OpenRouter's `usage.cost` is
 * kept as the provider-reported cost.
 */
export function fromOpenAI(response: unknown, labels: Labels = {}): UsageEvent {
  const r = obj(response);
  const usage = obj(r?.usage);
  let input: number, cached: number, output: number, reasoning: number, audioIn = 0, audioOut = 0;
  let cacheWrite = 0;
  if (usage && ("prompt_tokens" in usage || "completion_tokens" in usage)) {
    const pd = obj(usage.prompt_tokens_details);
    const cd = obj(usage.completion_tokens_details);
    input = n(usage.prompt_tokens);
    cached = n(pd?.cached_tokens);
    cacheWrite = n(pd?.cache_write_tokens) || n(usage.cache_creation_input_tokens);
    output = n(usage.completion_tokens);
    reasoning = n(cd?.reasoning_tokens);
    audioIn = n(pd?.audio_tokens);
    audioOut = n(cd?.audio_tokens);
  } else {
    input = n(usage?.input_tokens);
    cached = n(obj(usage?.input_tokens_details)?.cached_tokens);
    output = n(usage?.output_tokens);
    reasoning = n(obj(usage?.output_tokens_details)?.reasoning_tokens);
  }
  // Some compatible APIs report a cache write beside the prompt rather than inside it.
  if (cached + cacheWrite > input) input += cached + cacheWrite;
  return event(labels.provider ?? "openai", r?.model, r?.id, labels, {
    input_tokens: input,
    output_tokens: output,
    cached_input_tokens: cached,
    cache_write_tokens: cacheWrite,
    reasoning_tokens: Math.min(reasoning, output),
    audio_input_tokens: Math.min(audioIn, Math.max(0, input - cached - cacheWrite)),
    audio_output_tokens: Math.min(audioOut, output),
    service_tier: r?.service_tier as string | undefined,
    provider_cost_usd: usage?.cost as number | undefined,
  });
}

/**
 * An Anthropic Messages result. Its `input_tokens` leaves out cache reads and writes, which are
 * added here; the one-hour part of the cache writes is named (priced higher).
 */
export function fromAnthropic(message: unknown, labels: Labels = {}): UsageEvent {
  const m = obj(message);
  const usage = obj(m?.usage);
  const cached = n(usage?.cache_read_input_tokens);
  const cacheWrite = n(usage?.cache_creation_input_tokens);
  const write1h = n(obj(usage?.cache_creation)?.ephemeral_1h_input_tokens);
  return event(labels.provider ?? "anthropic", m?.model, m?.id, labels, {
    input_tokens: n(usage?.input_tokens) + cached + cacheWrite,
    output_tokens: n(usage?.output_tokens),
    cached_input_tokens: cached,
    cache_write_tokens: cacheWrite,
    cache_write_1h_tokens: Math.min(write1h, cacheWrite),
    service_tier: usage?.service_tier as string | undefined,
  });
}
