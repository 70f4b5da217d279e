import { defineConfig } from "vitest/config";

// Each file starts its own `llmtrack serve`; the tests talk to it over real HTTP.
export default defineConfig({ test: { include: ["test/**/*.test.ts"], testTimeout: 60_000, hookTimeout: 60_000 } });
