// LLMtrack's TypeScript client: send one usage event per LLM call.
//
//   const tracker = new Tracker();                 // LLMTRACK_API_KEY, LLMTRACK_BASE_URL
//   tracker.record(fromOpenAI(completion, { feature: "summarize" }));
//
// Before a call, ask whether a budget still allows it: `await tracker.guard({ feature: "summarize" })`
// rejects with `BudgetExceededError` once a budget that applies is used up.

export { Tracker, DEFAULT_BASE_URL, type TrackerOptions } from "./tracker.js";
export { fromOpenAI, fromAnthropic, type UsageEvent, type Labels } from "./events.js";
export { fromVercelStep, onFinish } from "./vercel.js";
export {
  BudgetExceededError,
  BudgetCheckError,
  type BudgetCheck,
  type BudgetStatus,
  type BudgetQuery,
  type BudgetDecision,
} from "./budget.js";
