/** docs/state-machines.md must carry the diagrams and tables the code generates. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MACHINE_DEFINITIONS, MACHINE_KINDS, applyGeneratedSections, renderStateDocs, staleSections } from '../src/state/index.js';

const DOC_PATH = fileURLToPath(new URL('../docs/state-machines.md', import.meta.url));

describe('docs/state-machines.md', () => {
  const doc = readFileSync(DOC_PATH, 'utf8');
  const sections = renderStateDocs();

  it('is current with the code (regenerate: node dist/src/state/docs.js --write)', () => {
    expect(staleSections(doc)).toEqual([]);
    expect(applyGeneratedSections(doc)).toBe(doc);
  });

  it('draws every edge, the initial state and the terminal states of every machine', () => {
    for (const kind of MACHINE_KINDS) {
      const def = MACHINE_DEFINITIONS[kind];
      const body = sections[kind] ?? '';
      expect(body).toContain('stateDiagram-v2');
      expect(body).toContain(`[*] --> ${def.initial}`);
      for (const e of def.edges) expect(body).toContain(`    ${e.from} --> ${e.to} : ${e.event}\n`);
      for (const t of def.terminal) expect(body).toContain(`${t} --> [*]`);
      const arrows = body.split('\n').filter((l) => / --> /.test(l) && !l.includes('[*]'));
      expect(arrows).toHaveLength(def.edges.length);
    }
  });

  it('detects a stale section and missing markers', () => {
    const edited = doc.replace('    Queued --> Scheduled : coordinator_accepts\n', '');
    expect(edited).not.toBe(doc);
    expect(staleSections(edited)).toEqual(['Task']);
    expect(applyGeneratedSections(edited)).toBe(doc);
    const noMarkers = doc.replace('<!-- generated:end Worker -->', '');
    expect(staleSections(noMarkers)).toContain('Worker');
    expect(() => applyGeneratedSections(noMarkers)).toThrow(/Worker/);
  });

  it('documents the reasons for each resolved contradiction', () => {
    for (const phrase of ['Degraded → Computing is allowed', 'Committing returns to Ready, not Joined', 'No Recovering worker state', 'Executing → Scheduled']) {
      expect(doc).toContain(phrase);
    }
  });
});
