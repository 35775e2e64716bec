/** One-line descriptions of core events and commands, for a replayed seed's trace. */
import type { CoreCommand, CoreEvent } from '../../src/cluster/coordinator/core.js';

export function describeEvent(e: CoreEvent): string {
  switch (e.type) {
    case 'submit':
      return `submit ${e.task.taskId} (prompt ${e.task.promptIds.length}, max ${e.task.maxTokens})`;
    case 'result':
      return `result ${e.batchId} from ${e.nodeId}`;
    case 'worker_error':
      return `worker_error ${e.nodeId} batch ${e.batchId}: ${e.message}`;
    case 'cancel':
      return `cancel ${e.taskId}`;
    case 'worker_joined':
    case 'worker_loaded':
    case 'heartbeat':
      return `${e.type} ${e.nodeId}`;
    case 'worker_gone':
      return `worker_gone ${e.nodeId} (${e.graceful ? 'graceful' : e.reason})`;
    default:
      return e.type;
  }
}

export function describeCommand(c: CoreCommand): string {
  switch (c.type) {
    case 'forward':
      return `forward ${c.batch.batchId}→${c.nodeId} [${Array.from(c.batch.seqIds, (s, i) => `${s}@${c.batch.positions[i]}`).join(' ')}]`;
    case 'truncate':
      return `truncate ${c.nodeId} seq ${c.seqId}`;
    case 'task':
      return c.event.type === 'finished' ? `${c.event.taskId} finished ${c.event.reason}` : `${c.event.taskId} ${c.event.type}`;
    case 'assign':
      return `assign ${c.nodeId} stage ${c.stageIndex}/${c.stageCount}`;
    case 'log':
      return 'log';
    default:
      return c.type;
  }
}
