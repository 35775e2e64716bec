/**
 * A fake InferenceService for the HTTP API tests: a real synthetic tokenizer, and a scripted, deterministic token
 * stream delivered asynchronously one token at a time (as the cluster does). Records what was submitted and
 * cancelled, and can play an unavailable cluster or a failure mid-task.
 */
import type { ClusterStatus, CompletionHandlers, InferenceService, SubmittedTask } from '../../src/cluster/coordinator/service.js';
import type { TaskInput } from '../../src/cluster/scheduler.js';
import type { TokenLogprob } from '../../src/engine/sampler.js';
import { syntheticSpmVocab, tokenizerFromVocab, type Tokenizer } from '../../src/engine/tokenizer/index.js';

/** What a task generates, as text: SentencePiece's prefix space makes it start with ' '. '€' is byte fallback. */
export const FAKE_TEXT = ' Hello world, the cat sat on the mat. It costs 5€ today';

export class FakeService implements InferenceService {
  readonly tokenizer: Tokenizer = tokenizerFromVocab(syntheticSpmVocab({ size: 400, seed: 1 }));
  readonly modelName = 'fake-llama';
  readonly contextLength = 64;
  phase = 'serving';
  /** Tokens every task generates (then EOS), whatever the prompt. */
  script: number[];
  /** Milliseconds between tokens (0: next macrotask). */
  tokenDelayMs = 0;
  /** Fail the task with reason 'error' after this many tokens (null: never). */
  failAfter: number | null = null;
  /** Throw RangeError from submit for prompts at least this long (the real service's own check). */
  rangeErrorAt = Infinity;
  readonly submitted: TaskInput[] = [];
  readonly cancelled: string[] = [];
  private active = 0;

  constructor() {
    this.script = [...this.tokenizer.encode(FAKE_TEXT.slice(1), { addBos: false }), this.tokenizer.eosId!];
  }

  get eosId(): number {
    return this.tokenizer.eosId!;
  }

  submit(input: Omit<TaskInput, 'taskId'> & { readonly taskId?: string }, h: CompletionHandlers): SubmittedTask {
    const taskId = input.taskId ?? `task-${this.submitted.length}`;
    if (input.promptIds.length >= Math.min(this.contextLength, this.rangeErrorAt)) {
      throw new RangeError(`the prompt has ${input.promptIds.length} tokens but the context holds ${this.contextLength}`);
    }
    this.submitted.push({ ...input, taskId });
    let done = false;
    let timer: NodeJS.Timeout | null = null;
    const generated: number[] = [];
    const finish = (reason: 'stop' | 'length' | 'cancelled' | 'error'): void => {
      done = true;
      this.active--;
      if (timer) clearTimeout(timer);
      h.onFinish(reason, generated);
    };
    this.active++;
    if (this.phase !== 'serving') {
      finish('error'); // synchronously, inside submit, as the coordinator does
      return { taskId, cancel: () => {} };
    }
    const step = (): void => {
      if (done) return;
      if (this.failAfter !== null && generated.length >= this.failAfter) return finish('error');
      const token = this.script[generated.length % this.script.length]!;
      generated.push(token);
      h.onToken(token, input.topLogprobs > 0 ? fakeLogprobs(token, input.topLogprobs) : null);
      if (!input.ignoreEos && this.tokenizer.isEog(token)) return finish('stop');
      if (generated.length >= input.maxTokens) return finish('length');
      timer = setTimeout(step, this.tokenDelayMs);
    };
    timer = setTimeout(step, this.tokenDelayMs);
    return {
      taskId,
      cancel: () => {
        if (done) return;
        this.cancelled.push(taskId);
        finish('cancelled');
      },
    };
  }

  get activeTasks(): number {
    return this.active;
  }

  status(): ClusterStatus {
    return {
      model: { name: this.modelName, path: '/models/fake.gguf', layers: 2, vocabSize: this.tokenizer.vocabSize, contextLength: this.contextLength },
      systemState: 'Serving', coordinatorState: 'Serving', phase: this.phase,
      workers: [
        { nodeId: 'w1', state: 'Serving', stageIndex: 0, firstLayer: 0, lastLayer: 1, memoryBytes: 2 ** 30, speedBytesPerSecond: 25e9, hostname: 'alpha' },
        { nodeId: 'w2', state: 'Serving', stageIndex: 1, firstLayer: 1, lastLayer: 2, memoryBytes: 2 ** 29, speedBytesPerSecond: 12e9, hostname: 'beta' },
      ],
      tasks: [], queuedTasks: 0, plan: { tokensPerSecond: 42, explanation: 'fake' },
    };
  }

  stateJSON(): unknown {
    return { machines: [{ kind: 'System', id: 'system', state: 'Serving' }] };
  }
}

/** The sampled token first (logprob −0.25), then k−1 others with falling logprobs: a valid top-k list. */
export function fakeLogprobs(token: number, k: number): TokenLogprob[] {
  const out: TokenLogprob[] = [{ id: token, logprob: -0.25 }];
  for (let i = 1; out.length < k; i++) out.push({ id: (token + 7 * i) % 400, logprob: -0.25 - i });
  return out;
}
