import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { StopMatcher, tokenLabel } from '../src/api/completions/text.js';
import { syntheticSpmVocab, tokenizerFromVocab } from '../src/engine/tokenizer/index.js';

/**
 * Stops are detected causally, as the text arrives: after the first piece that completes any stop sequence, the
 * text is cut at the earliest occurrence in what has arrived so far (a longer stop that started earlier but would
 * only complete later does not count — generation ends at the first completed one).
 */
function reference(pieces: readonly string[], stops: readonly string[]): { text: string; stopped: boolean } {
  let text = '';
  for (const p of pieces) {
    text += p;
    const hits = stops.map((s) => text.indexOf(s)).filter((i) => i >= 0);
    if (hits.length > 0) return { text: text.slice(0, Math.min(...hits)), stopped: true };
  }
  return { text, stopped: false };
}

describe('StopMatcher', () => {
  it('releases exactly the text before the first stop sequence, however the text is split', () => {
    const str = (min: number, max: number) => fc.string({ unit: fc.constantFrom('a', 'b', ' ', 'é'), minLength: min, maxLength: max });
    fc.assert(
      fc.property(fc.array(str(0, 4), { maxLength: 12 }), fc.array(str(1, 4), { minLength: 1, maxLength: 3 }), (pieces, stops) => {
        const m = new StopMatcher(stops);
        let out = '';
        let stopped = false;
        for (const p of pieces) {
          const r = m.push(p);
          out += r.text;
          // Released text never holds a stop sequence, not even one about to be completed.
          for (const s of stops) expect(out.includes(s)).toBe(false);
          if (r.stopped) {
            stopped = true;
            break;
          }
        }
        if (!stopped) out += m.flush();
        expect({ text: out, stopped }).toEqual(reference(pieces, stops));
      }),
      { numRuns: 500 },
    );
  });

  it('holds back a possible start of a stop sequence until it is decided', () => {
    const m = new StopMatcher(['</end>']);
    expect(m.push('hello </')).toEqual({ text: 'hello ', stopped: false });
    expect(m.push('em>')).toEqual({ text: '</em>', stopped: false });
    expect(m.push(' x </en')).toEqual({ text: ' x ', stopped: false });
    expect(m.push('d> tail')).toEqual({ text: '', stopped: true });
  });

  it('with no stop sequences, releases everything at once', () => {
    const m = new StopMatcher([]);
    expect(m.push('abc')).toEqual({ text: 'abc', stopped: false });
    expect(m.flush()).toBe('');
  });
});

describe('tokenLabel', () => {
  const tok = tokenizerFromVocab(syntheticSpmVocab({ size: 400, seed: 1 }));
  it('spells text tokens as text, byte pieces as OpenAI does, control tokens by their piece', () => {
    const [hello] = tok.encode('hello', { addBos: false });
    expect(tok.piece(hello!).startsWith('\u2581')).toBe(true);
    expect(tokenLabel(tok, hello!)).toBe(tok.piece(hello!).replaceAll('\u2581', ' ')); // the continuation keeps its space
    const euro = tok.encode('€', { addBos: false }).filter((id) => tok.tokenBytes(id).length === 1 && tok.tokenBytes(id)[0]! >= 0x80);
    expect(euro.map((id) => tokenLabel(tok, id))).toEqual(['bytes:\\xe2', 'bytes:\\x82', 'bytes:\\xac']);
    expect(tokenLabel(tok, tok.eosId!)).toBe('</s>');
  });
});
