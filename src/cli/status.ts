/**
 * `butterfly status`: the coordinator's view of the cluster (GET /api/v1/status) as a table, or raw with --json.
 */
import type { Command } from 'commander';
import type { ClusterStatus, WorkerStatus } from '../cluster/coordinator/service.js';
import { formatBytes, formatSpeed } from '../cluster/plan-format.js';
import { UsageError } from './errors.js';

const DEFAULT_URL = 'http://127.0.0.1:8080';
const REQUEST_TIMEOUT_MS = 5000;

function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: readonly string[]): string => cells.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}

function workerRow(w: WorkerStatus): string[] {
  const layers = w.firstLayer !== null && w.lastLayer !== null ? `[${w.firstLayer}, ${w.lastLayer})` : '—';
  return [w.nodeId, w.state, w.stageIndex === null ? '—' : String(w.stageIndex + 1), layers, formatBytes(w.memoryBytes), formatSpeed(w.speedBytesPerSecond), w.hostname];
}

/** Pipeline order (stage 1 first), then workers without a stage, by name: the table reads like the pipeline. */
function byStage(a: WorkerStatus, b: WorkerStatus): number {
  const sa = a.stageIndex ?? Infinity;
  const sb = b.stageIndex ?? Infinity;
  return sa !== sb ? sa - sb : a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0;
}

export function formatStatus(s: ClusterStatus): string {
  const m = s.model;
  const workers = [...s.workers].sort(byStage);
  const lines = [
    `Model:        ${m.name} (${m.layers} layers, vocab ${m.vocabSize}, context ${m.contextLength}) — ${m.path}`,
    `System:       ${s.systemState}`,
    `Coordinator:  ${s.coordinatorState} (phase: ${s.phase})`,
    `Plan:         ${s.plan ? `${s.plan.tokensPerSecond.toFixed(1)} tokens/s predicted for one sequence` : 'none yet'}`,
    '',
    ...(workers.length > 0 ? table(['node', 'state', 'stage', 'layers', 'memory', 'speed', 'host'], workers.map(workerRow)) : ['No workers have joined.']),
    '',
    `Tasks:        ${s.tasks.length} active, ${s.queuedTasks} queued`,
  ];
  return lines.join('\n') + '\n';
}

/** GET the status; every failure becomes one line naming the URL. */
export async function fetchStatus(url: string): Promise<ClusterStatus> {
  const endpoint = new URL('/api/v1/status', url).toString();
  let res: Response;
  try {
    res = await fetch(endpoint, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = e.cause?.code ?? e.cause?.message ?? e.message;
    throw new UsageError(`cannot reach the coordinator at ${url}: ${why}`);
  }
  if (!res.ok) throw new UsageError(`the coordinator at ${url} answered ${res.status} for /api/v1/status: ${(await res.text()).slice(0, 200)}`);
  const body: unknown = await res.json().catch(() => null);
  if (!isStatus(body)) throw new UsageError(`the coordinator at ${url} sent something that is not a cluster status (is it a Butterfly coordinator?)`);
  return body;
}

function isStatus(v: unknown): v is ClusterStatus {
  const s = v as Partial<ClusterStatus> | null;
  return typeof s === 'object' && s !== null && typeof s.model === 'object' && Array.isArray(s.workers) && Array.isArray(s.tasks);
}

export function registerStatus(program: Command, out: (text: string) => void = (t) => process.stdout.write(t)): void {
  program
    .command('status')
    .description('show the cluster as the coordinator sees it')
    .option('--url <url>', 'the coordinator\'s HTTP API', DEFAULT_URL)
    .option('--json', 'print the raw status object')
    .action(async (o: { url: string; json?: boolean }) => {
      try {
        new URL(o.url);
      } catch {
        throw new UsageError(`--url: '${o.url}' is not a URL (e.g. ${DEFAULT_URL})`);
      }
      const status = await fetchStatus(o.url);
      out(o.json ? JSON.stringify(status, null, 2) + '\n' : formatStatus(status));
    });
}
