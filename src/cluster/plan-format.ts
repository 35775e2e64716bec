/**
 * Human-facing text for plans: byte sizes, the `butterfly plan` table, and parsing of worker specs given on the
 * command line. Pure functions only.
 */
import type { Plan, WorkerBudget } from './planner.js';

const UNITS = [
  { name: 'GiB', bytes: 2 ** 30 },
  { name: 'MiB', bytes: 2 ** 20 },
  { name: 'KiB', bytes: 2 ** 10 },
] as const;

function unitFor(bytes: number): (typeof UNITS)[number] | null {
  return UNITS.find((u) => bytes >= u.bytes) ?? null;
}

/** "7.4 GiB", "512.0 MiB", "3.0 KiB", "12 B": one decimal, binary units. */
export function formatBytes(bytes: number): string {
  const u = unitFor(Math.abs(bytes));
  return u ? `${(bytes / u.bytes).toFixed(1)} ${u.name}` : `${Math.round(bytes)} B`;
}

/**
 * A need and an offer in the same unit, rounded so the comparison stays truthful: the need rounds up, the offer
 * down ("needs 5.1 GiB, the cluster offers 5.0 GiB" rather than "needs 5.0 GiB, offers 5.0 GiB").
 */
export function formatBytePair(neededBytes: number, offeredBytes: number): [string, string] {
  const u = unitFor(Math.max(neededBytes, offeredBytes));
  if (!u) return [`${Math.ceil(neededBytes)} B`, `${Math.floor(offeredBytes)} B`];
  // The epsilon keeps exact tenths (7.4 GiB computed in floating point) from rounding a whole step.
  const up = Math.ceil((neededBytes / u.bytes) * 10 - 1e-9) / 10;
  const down = Math.floor((offeredBytes / u.bytes) * 10 + 1e-9) / 10;
  return [`${up.toFixed(1)} ${u.name}`, `${down.toFixed(1)} ${u.name}`];
}

/** "25.0 GB/s" (decimal, like bandwidth figures usually are). */
export function formatSpeed(bytesPerSecond: number): string {
  return bytesPerSecond >= 1e9 ? `${(bytesPerSecond / 1e9).toFixed(1)} GB/s` : `${(bytesPerSecond / 1e6).toFixed(1)} MB/s`;
}

function layerRange(first: number, last: number): string {
  return last - first === 1 ? `${first}` : `${first}–${last - 1}`;
}

/** The plan as a table plus its explanation, for `butterfly plan`. */
export function formatPlan(plan: Plan): string {
  const header = ['stage', 'worker', 'layers', 'holds', 'weights', 'KV cache', 'memory / budget', 'speed', 'ms/token'];
  const rows = plan.stages.map((s, i) => [
    String(i + 1),
    s.workerId,
    `${layerRange(s.firstLayer, s.lastLayer)} (${s.lastLayer - s.firstLayer})`,
    [s.hasEmbedding ? 'embedding' : '', s.hasHead ? 'head' : ''].filter(Boolean).join(' + ') || '—',
    formatBytes(s.weightBytes),
    formatBytes(s.kvBytes),
    `${formatBytes(s.memoryBytes)} / ${formatBytes(s.budgetBytes)}`,
    formatSpeed(s.speed),
    (s.secondsPerToken * 1e3).toFixed(2),
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: string[]): string => cells.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd();
  const out = [
    `Plan: ${plan.nLayers} layers on ${plan.stages.length} worker${plan.stages.length === 1 ? '' : 's'} (objective: ${plan.objective})`,
    '',
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
    '',
    `Memory: ${formatBytes(plan.neededBytes)} used of ${formatBytes(plan.offeredBytes)} offered.`,
    '',
    plan.explanation,
  ];
  return out.join('\n') + '\n';
}

const SIZE_RE = /^(\d+(?:\.\d+)?(?:e\d+)?)\s*([kmgt]i?b?|b)?$/i;
const SIZE_FACTORS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  kib: 2 ** 10,
  ki: 2 ** 10,
  m: 1e6,
  mb: 1e6,
  mib: 2 ** 20,
  mi: 2 ** 20,
  g: 1e9,
  gb: 1e9,
  gib: 2 ** 30,
  gi: 2 ** 30,
  t: 1e12,
  tb: 1e12,
  tib: 2 ** 40,
  ti: 2 ** 40,
};

/** "8GiB", "512 MiB", "1.5e9", "4G" (G = 10^9, GiB = 2^30) → bytes. */
export function parseByteSize(text: string): number {
  const m = SIZE_RE.exec(text.trim());
  const factor = m ? SIZE_FACTORS[(m[2] ?? '').toLowerCase()] : undefined;
  if (!m || factor === undefined) throw new Error(`cannot read "${text}" as a size (try 8GiB, 512MiB or a byte count)`);
  return Math.round(Number(m[1]) * factor);
}

/** "25GB/s", "800MB/s", "2.5e10" → bytes per second. */
export function parseSpeed(text: string): number {
  const t = text.trim().replace(/\/s$/i, '');
  try {
    const v = parseByteSize(t);
    if (v <= 0) throw new Error('zero');
    return v;
  } catch {
    throw new Error(`cannot read "${text}" as a speed (try 25GB/s or 800MB/s)`);
  }
}

/**
 * Workers from a CLI list: "a=8GiB@25GB/s,b=4GiB@12GB/s" (id=memory@speed). Also accepts "8GiB@25GB/s" items
 * without ids, numbered w1, w2, … in order.
 */
export function parseWorkerSpecs(spec: string): WorkerBudget[] {
  return spec
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((item, i) => {
      const m = /^(?:([^=@\s]+)=)?([^@]+)@(.+)$/.exec(item);
      if (!m) throw new Error(`cannot read worker "${item}" (expected id=memory@speed, e.g. a=8GiB@25GB/s)`);
      return { id: m[1] ?? `w${i + 1}`, memoryBytes: parseByteSize(m[2]!), speed: parseSpeed(m[3]!) };
    });
}
