// A real `llmtrack serve` (the binary LLMTRACK_BIN names) over its own SQLite store for the
// whole run, a fresh workspace with its keys per test, and local OpenAI and Anthropic fakes
// answering as the real APIs do (the same usage objects as the Python client's tests).

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const BIN = process.env.LLMTRACK_BIN ?? resolve(__dirname, "../../../target/debug/llmtrack");

export const CHAT_USAGE = {
  prompt_tokens: 2006,
  completion_tokens: 300,
  total_tokens: 2306,
  prompt_tokens_details: { cached_tokens: 1920, audio_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
};
export const RESPONSES_USAGE = {
  input_tokens: 1200,
  input_tokens_details: { cached_tokens: 1024 },
  output_tokens: 500,
  output_tokens_details: { reasoning_tokens: 384 },
  total_tokens: 1700,
};
export const ANTHROPIC_USAGE = {
  input_tokens: 50,
  cache_creation_input_tokens: 1000,
  cache_read_input_tokens: 3000,
  cache_creation: { ephemeral_5m_input_tokens: 400, ephemeral_1h_input_tokens: 600 },
  output_tokens: 120,
  service_tier: "standard",
};

export interface StoredEvent {
  id: string;
  provider: string;
  model: string;
  model_canonical: string;
  feature: string | null;
  user_id: string | null;
  source: string;
  status: string;
  input_tokens: number;
  output_tokens: number;
  cached_input_tokens: number;
  cache_write_tokens: number;
  cache_write_1h_tokens: number;
  reasoning_tokens: number;
  cost_usd: number | null;
  cost_source: string | null;
}

export class Serve {
  private proc: ChildProcess | undefined;
  private dir = mkdtempSync(join(tmpdir(), "llmtrack-ts-"));
  base = "";

  async start(): Promise<void> {
    const port = await freePort();
    this.base = `http://127.0.0.1:${port}`;
    this.proc = spawn(BIN, ["serve", "--addr", `127.0.0.1:${port}`, "--data-dir", this.dir], { stdio: "ignore" });
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        if ((await fetch(`${this.base}/healthz`)).ok) return;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error("llmtrack serve did not start");
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  stop(): void {
    this.proc?.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  admin(...args: string[]): Record<string, string> {
    const out = execFileSync(BIN, ["admin", "--data-dir", this.dir, "--json", ...args], { encoding: "utf8" });
    return JSON.parse(out);
  }

  workspace(): Workspace {
    const id = this.admin("create-workspace", "--name", "typescript client", "--plan", "pro").id;
    const key = this.admin("create-key", "--workspace", id, "--name", "ingest", "--source", "typescript").key;
    const read = this.admin("create-key", "--workspace", id, "--name", "read", "--source", "tests", "--scope", "read").key;
    return new Workspace(this.base, key, read, id, this);
  }

  /** The member the tests sign in as, to do what only a session may (budgets). */
  static readonly ADMIN = "client-tests@example.com";
  private cookie: Promise<string> | undefined;

  /**
   * A session cookie for `ADMIN`, signed in by the code the server writes to its outbox, once
   * for the run: sign-ins are rate limited per address.
   */
  session(): Promise<string> {
    this.cookie ??= this.signIn();
    return this.cookie;
  }

  private async signIn(): Promise<string> {
    const outbox = join(this.dir, "outbox");
    const mails = () => (existsSync(outbox) ? readdirSync(outbox).filter((f) => f.endsWith(".eml")) : []);
    const before = new Set(mails());
    const asked = await fetch(`${this.base}/v1/auth/email`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: this.base },
      body: JSON.stringify({ email: Serve.ADMIN }),
    });
    if (asked.status !== 202) throw new Error(`${asked.status} ${await asked.text()}`);
    let code: string | undefined;
    for (const deadline = Date.now() + 15_000; !code; await new Promise((r) => setTimeout(r, 50))) {
      for (const f of mails().filter((m) => !before.has(m))) {
        const raw = readFileSync(join(outbox, f), "utf8");
        if (raw.includes(Serve.ADMIN)) code ??= /sign-in code: (\d{6})/.exec(raw)?.[1];
      }
      if (!code && Date.now() > deadline) throw new Error("no sign-in code in the outbox");
    }
    const r = await fetch(`${this.base}/v1/auth/verify`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: this.base },
      body: JSON.stringify({ email: Serve.ADMIN, code }),
    });
    if (r.status !== 200) throw new Error(`${r.status} ${await r.text()}`);
    return /llmtrack_session=[^;]*/.exec(r.headers.get("set-cookie") ?? "")![0];
  }
}

export class Workspace {
  constructor(
    readonly base: string,
    readonly key: string,
    readonly readKey: string,
    readonly id: string,
    private readonly serve: Serve,
  ) {}

  /**
   * Adds a budget (monthly and for the whole workspace unless `fields` say otherwise) through
   * the API, as a workspace admin signed in.
   */
  async addBudget(name: string, amountUsd: number, fields: Record<string, unknown> = {}): Promise<{ id: string }> {
    this.serve.admin("add-member", "--workspace", this.id, "--email", Serve.ADMIN, "--role", "admin");
    const r = await fetch(`${this.base}/v1/workspaces/${this.id}/budgets`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: this.base, cookie: await this.serve.session() },
      body: JSON.stringify({ name, amount_usd: amountUsd, period: { kind: "month" }, ...fields }),
    });
    if (r.status !== 201) throw new Error(`${r.status} ${await r.text()}`);
    return (await r.json()) as { id: string };
  }

  async events(): Promise<StoredEvent[]> {
    const r = await fetch(`${this.base}/v1/events?from=last_24h&limit=500`, {
      headers: { authorization: `Bearer ${this.readKey}` },
    });
    if (!r.ok) throw new Error(`${r.status} ${await r.text()}`);
    const page = (await r.json()) as { events: StoredEvent[] };
    return page.events.sort((a, b) => a.id.localeCompare(b.id));
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolvePort(port));
    });
  });
}

/** The OpenAI and Anthropic APIs, as far as the tests call them. */
export async function fakeProviders(): Promise<{ base: string; server: Server }> {
  let n = 0;
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      n += 1;
      const request = JSON.parse(body || "{}");
      const json = (payload: unknown) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(payload));
      };
      if (req.url?.endsWith("/chat/completions")) {
        return json({
          id: `chatcmpl-ts${n}`, object: "chat.completion", created: 1764700000, model: "gpt-4o-2024-08-06",
          choices: [{ index: 0, message: { role: "assistant", content: "Hello there.", refusal: null, annotations: [] }, logprobs: null, finish_reason: "stop" }],
          usage: CHAT_USAGE, service_tier: "default", system_fingerprint: "fp_fake",
        });
      }
      if (req.url?.endsWith("/responses")) {
        return json({
          id: `resp_ts${n}`, object: "response", created_at: 1764700000, status: "completed", model: "o4-mini-2025-04-16",
          output: [{ type: "message", id: `msg_${n}`, status: "completed", role: "assistant", content: [{ type: "output_text", text: "Hello there.", annotations: [] }] }],
          usage: RESPONSES_USAGE, parallel_tool_calls: true, tool_choice: "auto", tools: [], error: null, incomplete_details: null,
          instructions: null, metadata: {}, temperature: 1, top_p: 1, service_tier: "default",
        });
      }
      if (req.url?.endsWith("/messages")) {
        return json({
          id: `msg_ts${n}`, type: "message", role: "assistant", model: "claude-sonnet-4-6",
          content: [{ type: "text", text: "Hello there." }], stop_reason: "end_turn", stop_sequence: null, usage: ANTHROPIC_USAGE,
          request: request.model,
        });
      }
      res.writeHead(404).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}
