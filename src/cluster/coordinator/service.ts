/**
 * What the HTTP API needs from a running cluster. The coordinator node implements it; API tests can implement it
 * with a fake. Keeps src/api independent of how the cluster is wired.
 */
import type { TokenLogprob } from '../../engine/sampler.js';
import type { Tokenizer } from '../../engine/tokenizer/index.js';
import type { FinishReason, TaskInput } from '../scheduler.js';

export interface CompletionHandlers {
  onToken(token: number, logprobs: TokenLogprob[] | null): void;
  onFinish(reason: FinishReason, tokens: readonly number[]): void;
}

export interface SubmittedTask {
  readonly taskId: string;
  cancel(): void;
}

export interface WorkerStatus {
  readonly nodeId: string;
  readonly state: string;
  readonly stageIndex: number | null;
  readonly firstLayer: number | null;
  readonly lastLayer: number | null;
  readonly memoryBytes: number;
  readonly speedBytesPerSecond: number;
  readonly hostname: string;
}

export interface ClusterStatus {
  readonly model: { readonly name: string; readonly path: string; readonly layers: number; readonly vocabSize: number; readonly contextLength: number };
  readonly systemState: string;
  readonly coordinatorState: string;
  readonly phase: string;
  readonly workers: readonly WorkerStatus[];
  readonly tasks: readonly { readonly taskId: string; readonly seqId: number; readonly generated: number; readonly prefilled: number }[];
  readonly queuedTasks: number;
  readonly plan: { readonly tokensPerSecond: number; readonly explanation: string } | null;
}

export interface InferenceService {
  readonly tokenizer: Tokenizer;
  readonly modelName: string;
  readonly contextLength: number;
  /** Start a task; handlers are called as tokens arrive. Throws RangeError for prompts over the context. */
  submit(input: Omit<TaskInput, 'taskId'> & { readonly taskId?: string }, handlers: CompletionHandlers): SubmittedTask;
  status(): ClusterStatus;
  /** Every state machine: kind, id, state, time in state, epoch, history (GET /api/v1/state). */
  stateJSON(): unknown;
}
