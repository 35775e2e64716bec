/**
 * A submitted task as an async sequence of events. The service calls its handlers from cluster code — sometimes
 * synchronously inside submit() (a cluster that is not serving fails the task at once) — so events are queued and
 * the HTTP side pulls them at its own pace.
 */
import type { TokenLogprob } from '../../engine/sampler.js';
import type { FinishReason } from '../../cluster/scheduler.js';
import type { InferenceService } from '../../cluster/coordinator/service.js';
import type { CompletionRequest } from './request.js';

export type TaskFeedEvent =
  | { readonly type: 'token'; readonly token: number; readonly logprobs: readonly TokenLogprob[] | null }
  | { readonly type: 'finish'; readonly reason: FinishReason };

export class TaskFeed {
  private readonly queue: TaskFeedEvent[] = [];
  private waiter: ((e: TaskFeedEvent) => void) | null = null;
  private cancelFn: (() => void) | null = null;
  private cancelRequested = false;
  private finished = false;

  /** Throws what service.submit throws (RangeError for a prompt over the context). */
  constructor(service: InferenceService, taskId: string, req: CompletionRequest) {
    const task = service.submit(
      {
        taskId, promptIds: req.promptIds, maxTokens: req.maxTokens, sampler: req.sampler,
        // Ask for one alternative even at logprobs: 0, so the sampled token's own logprob is usually known.
        topLogprobs: req.logprobs === null ? 0 : Math.max(1, req.logprobs), ignoreEos: req.ignoreEos,
      },
      {
        onToken: (token, logprobs) => this.emit({ type: 'token', token, logprobs }),
        onFinish: (reason) => this.emit({ type: 'finish', reason }),
      },
    );
    this.cancelFn = () => task.cancel();
    // A cancel asked for while submit() was still delivering events takes effect now.
    if (this.cancelRequested) this.cancel();
  }

  /** Stop the task (stop sequence hit, client gone). Safe to call at any time, any number of times. */
  cancel(): void {
    this.cancelRequested = true;
    if (this.finished || !this.cancelFn) return;
    const fn = this.cancelFn;
    this.cancelFn = null;
    fn();
  }

  get isFinished(): boolean {
    return this.finished;
  }

  next(): Promise<TaskFeedEvent> {
    const e = this.queue.shift();
    if (e) return Promise.resolve(e);
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }

  private emit(e: TaskFeedEvent): void {
    if (this.finished) return;
    if (e.type === 'finish') this.finished = true;
    const w = this.waiter;
    if (w) {
      this.waiter = null;
      w(e);
    } else {
      this.queue.push(e);
    }
  }
}
