/**
 * Generates the tables and Mermaid diagrams in docs/state-machines.md from the code's own definitions, so the
 * document cannot drift from the code (a test compares them).
 *
 *   node dist/src/state/docs.js --write [--file docs/state-machines.md]   rewrite the generated sections
 *   node dist/src/state/docs.js --check                                     exit 1 if any section is stale
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { COMPONENT_KINDS, MACHINE_DEFINITIONS, MACHINE_KINDS } from './catalog.js';
import { VERTICAL_COHERENCE } from './coherence.js';
import type { MachineDefinition, TransitionContext } from './definition.js';
import { SYSTEM_STATES } from './machines/system.js';

export const DEFAULT_DOC_PATH = 'docs/state-machines.md';

const begin = (name: string): string => `<!-- generated:begin ${name} -->`;
const end = (name: string): string => `<!-- generated:end ${name} -->`;

export function renderMermaid(def: MachineDefinition<string, TransitionContext>): string {
  const lines = ['```mermaid', 'stateDiagram-v2', `    [*] --> ${def.initial}`];
  for (const e of def.edges) lines.push(`    ${e.from} --> ${e.to} : ${e.event}`);
  for (const t of def.terminal) lines.push(`    ${t} --> [*]`);
  lines.push('```');
  return lines.join('\n');
}

function renderTables(def: MachineDefinition<string, TransitionContext>): string {
  const rows = [
    '| State | Meaning |',
    '|---|---|',
    ...def.states.map((s) => {
      const tags = [s === def.initial ? 'initial' : '', def.terminal.has(s) ? 'terminal' : ''].filter(Boolean);
      return `| ${s}${tags.length > 0 ? ` (${tags.join(', ')})` : ''} | ${def.stateDescriptions[s]} |`;
    }),
    '',
    '| From | To | Event | Triggers | Proof obligations |',
    '|---|---|---|---|---|',
    ...def.edges.map((e) => {
      const triggers = e.triggers ? [...e.triggers].join(', ') : 'any';
      const obligations = e.obligations.length > 0 ? e.obligations.map((o) => `${o.name}: ${o.description}`).join('; ') : '—';
      return `| ${e.from} | ${e.to} | \`${e.event}\` | ${triggers} | ${obligations} |`;
    }),
  ];
  if (def.rules.length > 0) rows.push('', `Machine-wide rules: ${def.rules.map((r) => r.name).join(', ')}.`);
  return rows.join('\n');
}

function renderVertical(): string {
  const rows = [`| System | ${COMPONENT_KINDS.join(' | ')} |`, `|---|${COMPONENT_KINDS.map(() => '---').join('|')}|`];
  for (const s of SYSTEM_STATES) {
    const cells = COMPONENT_KINDS.map((k) => {
      const allowed = VERTICAL_COHERENCE[s][k];
      return allowed.length === 0 ? '—' : allowed.join(', ');
    });
    rows.push(`| ${s} | ${cells.join(' | ')} |`);
  }
  return rows.join('\n');
}

/** Section name → generated markdown. One section per machine kind, plus `vertical-coherence`. */
export function renderStateDocs(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kind of MACHINE_KINDS) {
    const def = MACHINE_DEFINITIONS[kind];
    out[kind] = `${renderMermaid(def)}\n\n${renderTables(def)}`;
  }
  out['vertical-coherence'] = renderVertical();
  return out;
}

/** Replaces every generated section of `doc`; throws if a section's markers are missing. */
export function applyGeneratedSections(doc: string, sections: Record<string, string> = renderStateDocs()): string {
  let out = doc;
  for (const [name, body] of Object.entries(sections)) {
    const b = out.indexOf(begin(name));
    const e = out.indexOf(end(name));
    if (b < 0 || e < b) throw new Error(`state docs: markers for section "${name}" are missing or out of order`);
    out = `${out.slice(0, b)}${begin(name)}\n${body}\n${out.slice(e)}`;
  }
  return out;
}

/** Names of sections whose text differs from what the code generates (or whose markers are missing). */
export function staleSections(doc: string, sections: Record<string, string> = renderStateDocs()): string[] {
  const stale: string[] = [];
  for (const [name, body] of Object.entries(sections)) {
    const b = doc.indexOf(begin(name));
    const e = doc.indexOf(end(name));
    if (b < 0 || e < b || doc.slice(b + begin(name).length, e) !== `\n${body}\n`) stale.push(name);
  }
  return stale;
}

/** Rewrites the generated sections of the file in place; returns true if it changed. */
export function writeStateDocs(path: string = DEFAULT_DOC_PATH): boolean {
  const before = readFileSync(path, 'utf8');
  const after = applyGeneratedSections(before);
  if (after !== before) writeFileSync(path, after);
  return after !== before;
}

function main(argv: readonly string[]): number {
  const fileIdx = argv.indexOf('--file');
  const path = resolve(fileIdx >= 0 && argv[fileIdx + 1] ? argv[fileIdx + 1] as string : DEFAULT_DOC_PATH);
  if (argv.includes('--write')) {
    process.stdout.write(writeStateDocs(path) ? `updated ${path}\n` : `${path} already current\n`);
    return 0;
  }
  if (argv.includes('--check')) {
    const stale = staleSections(readFileSync(path, 'utf8'));
    if (stale.length > 0) {
      process.stderr.write(`${path}: stale sections: ${stale.join(', ')} (run with --write)\n`);
      return 1;
    }
    process.stdout.write(`${path} is current\n`);
    return 0;
  }
  process.stdout.write(Object.entries(renderStateDocs()).map(([n, b]) => `## ${n}\n\n${b}\n`).join('\n'));
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.exitCode = main(process.argv.slice(2));
}
