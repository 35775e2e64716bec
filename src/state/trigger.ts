/**
 * What caused a transition. A discriminated union so records serialize as plain JSON and listeners can switch on
 * `kind` (e.g. a Prometheus label) without parsing strings.
 */

export type Trigger =
  | { readonly kind: 'Command'; readonly name: string }
  | { readonly kind: 'Event'; readonly name: string }
  | { readonly kind: 'Cascade'; readonly source: string; readonly reason: string }
  | { readonly kind: 'Timeout'; readonly ms: number }
  | { readonly kind: 'Failure'; readonly node: string; readonly evidence: string }
  | { readonly kind: 'Recovery'; readonly nodes: readonly string[] };

export type TriggerKind = Trigger['kind'];

export const TRIGGER_KINDS: readonly TriggerKind[] = ['Command', 'Event', 'Cascade', 'Timeout', 'Failure', 'Recovery'];

/**
 * Constructors, named like the seed's variants. Kept on one object (which shares the type's name) rather than as
 * free functions so importing them never shadows the global `Event` class.
 */
export const Trigger = {
  /** An explicit instruction from an operator or the owning component. */
  Command: (name: string): Trigger => ({ kind: 'Command', name }),
  /** Something observed happened (a message arrived, work finished). */
  Event: (name: string): Trigger => ({ kind: 'Event', name }),
  /** Another component's transition forced this one. */
  Cascade: (source: string, reason: string): Trigger => ({ kind: 'Cascade', source, reason }),
  /** A deadline passed. */
  Timeout: (ms: number): Trigger => ({ kind: 'Timeout', ms }),
  /** A node failed; `evidence` says how we know (missed heartbeats, exit code, checksum). */
  Failure: (node: string, evidence: string): Trigger => ({ kind: 'Failure', node, evidence }),
  /** The named nodes are healthy again (or replaced). */
  Recovery: (nodes: readonly string[]): Trigger => ({ kind: 'Recovery', nodes }),
} as const;

export function describeTrigger(t: Trigger): string {
  switch (t.kind) {
    case 'Command':
      return `Command(${t.name})`;
    case 'Event':
      return `Event(${t.name})`;
    case 'Cascade':
      return `Cascade(${t.source}: ${t.reason})`;
    case 'Timeout':
      return `Timeout(${t.ms}ms)`;
    case 'Failure':
      return `Failure(${t.node}: ${t.evidence})`;
    case 'Recovery':
      return `Recovery(${t.nodes.join(', ')})`;
  }
}

/** A structural copy, so a stored record cannot change when the caller later mutates its trigger's arrays. */
export function copyTrigger(t: Trigger): Trigger {
  return t.kind === 'Recovery' ? { kind: 'Recovery', nodes: [...t.nodes] } : { ...t };
}

/** Parses untrusted JSON (a snapshot) back into a Trigger, or returns null if it is not one. */
export function parseTrigger(value: unknown): Trigger | null {
  if (typeof value !== 'object' || value === null) return null;
  const v = value as Record<string, unknown>;
  const str = (k: string): k is string => typeof v[k] === 'string';
  switch (v['kind']) {
    case 'Command':
    case 'Event':
      return str('name') ? { kind: v['kind'], name: v['name'] as string } : null;
    case 'Cascade':
      return str('source') && str('reason')
        ? { kind: 'Cascade', source: v['source'] as string, reason: v['reason'] as string }
        : null;
    case 'Timeout':
      return typeof v['ms'] === 'number' ? { kind: 'Timeout', ms: v['ms'] } : null;
    case 'Failure':
      return str('node') && str('evidence')
        ? { kind: 'Failure', node: v['node'] as string, evidence: v['evidence'] as string }
        : null;
    case 'Recovery': {
      const nodes = v['nodes'];
      return Array.isArray(nodes) && nodes.every((n) => typeof n === 'string')
        ? { kind: 'Recovery', nodes: [...(nodes as string[])] }
        : null;
    }
    default:
      return null;
  }
}
