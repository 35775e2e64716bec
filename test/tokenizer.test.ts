import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { meta } from '../src/engine/gguf/values.js';
import {
  metadataSource,
  syntheticBpeVocab,
  syntheticSpmVocab,
  tokenizerFromGguf,
  tokenizerFromVocab,
  TokenType,
  vocabMetadata,
  type SyntheticVocab,
  type Tokenizer,
} from '../src/engine/tokenizer/index.js';
import { preTokenize } from '../src/engine/tokenizer/pretokenize.js';
import { byteEncode, byteToUnicode, unicodeToByte } from '../src/engine/tokenizer/unicode.js';

const spmVocab = syntheticSpmVocab({ size: 2000, seed: 3 });
const tinySpmVocab = syntheticSpmVocab({ size: 300, seed: 4 });
const bpeVocab = syntheticBpeVocab({ size: 3000, seed: 5 });
const gpt2Vocab = syntheticBpeVocab({ size: 1000, seed: 6, pre: 'gpt-2' });

const tokenizers: ReadonlyArray<[string, Tokenizer]> = [
  ['spm-2000', tokenizerFromVocab(spmVocab)],
  ['spm-300', tokenizerFromVocab(tinySpmVocab)],
  ['bpe-llama3', tokenizerFromVocab(bpeVocab)],
  ['bpe-gpt2', tokenizerFromVocab(gpt2Vocab)],
];
const spm = tokenizers[0]![1];
const bpe = tokenizers[2]![1];

const SAMPLES: readonly string[] = [
  '',
  ' ',
  '   ',
  '\n',
  ' \n\n \t ',
  'Hello world',
  '  leading and trailing  ',
  'The quick brown fox jumps over the lazy dog.',
  "It's 5 o'clock; we're late, aren't we?",
  '1234567890 3.14159 -42 1e10',
  'function f(x) {\n\treturn x * 2; // double\n}\n',
  'Le café très bon — Über Straße, niño.',
  'Привет мир, Γειά σου, 中文文本, 日本語, 한국어',
  '😀👍🏽🎉🚀 👨‍👩‍👧‍👦',
  'e\u0301 \u00a0\u2003\u3000\u200b\u0085',
  '<s></s><unk><|begin_of_text|>',
  'Ġ Ċ <0x41>',
];

/** SentencePiece reads U+2581 as a space (same ids as " "), so it cannot survive a round trip there. */
const roundTrippable = (tok: Tokenizer, s: string): string => (tok.kind === 'llama' ? s.replaceAll('\u2581', ' ') : s);

describe.each(tokenizers)('%s round trip', (_name, tok) => {
  test('decode(encode(s)) === s for varied samples, with and without BOS', () => {
    for (const s of [...SAMPLES, '▁ ▁▁x']) {
      expect(tok.decode(tok.encode(s, { addBos: false }))).toBe(roundTrippable(tok, s));
      expect(tok.decode(tok.encode(s, { addBos: true }))).toBe(roundTrippable(tok, s));
    }
  });

  test('decode(encode(s)) === s for random strings', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (s) => {
        expect(tok.decode(tok.encode(s, { addBos: false }))).toBe(roundTrippable(tok, s));
      }),
      { numRuns: 300, seed: 42 },
    );
  });

  test('all ids are in range, and BOS comes first only when asked', () => {
    const ids = tok.encode('Hello there 😀', { addBos: true });
    expect(ids[0]).toBe(tok.bosId);
    for (const id of ids) expect(id >= 0 && id < tok.vocabSize).toBe(true);
    expect(tok.encode('Hello there 😀', { addBos: false })).toEqual(ids.slice(1));
  });

  test('streaming decode concatenates to decode, never emitting a partial character', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: tok.vocabSize - 1 }), { maxLength: 30 }), (ids) => {
        const d = tok.newStreamDecoder({ atTextStart: true });
        let s = '';
        for (const id of ids) s += d.push(id);
        s += d.flush();
        // decode sees all bytes at once; a character cut between pushes would have become U+FFFD here instead.
        expect(s).toBe(tok.decode(ids));
      }),
      { numRuns: 200, seed: 7 },
    );
  });
});

describe('SentencePiece specifics', () => {
  test('spaces become ▁ and a space is prefixed to the text', () => {
    const ids = spm.encode('Hello world', { addBos: false });
    const pieces = ids.map((i) => spm.piece(i));
    expect(pieces.join('')).toBe('▁Hello▁world');
    expect(pieces[0]!.startsWith('▁')).toBe(true);
  });

  test('merging follows piece scores, not the longest match', () => {
    // A tiny vocabulary where greedy longest-match and score-ordered merging disagree on "abc".
    const tokens = ['<unk>', '<s>', '</s>', '▁', 'a', 'b', 'c', 'ab', 'bc', 'abc'];
    const v: SyntheticVocab = {
      model: 'llama',
      tokens,
      // "bc" outranks "ab"; "abc" can only be formed from "ab"+"c" or "a"+"bc".
      scores: Float32Array.from([0, 0, 0, -1, -2, -2, -2, -5, -3, -4]),
      tokenTypes: Int32Array.from([2, 3, 3, 1, 1, 1, 1, 1, 1, 1]),
      bosId: 1,
      eosId: 2,
      unkId: 0,
    };
    const entries = vocabMetadata(v);
    entries.push(['tokenizer.ggml.add_space_prefix', meta.bool(false)]);
    const tok = tokenizerFromGguf(metadataSource(entries));
    // "bc" merges first, then "a"+"bc" = "abc".
    expect(tok.encode('abc', { addBos: false }).map((i) => tok.piece(i))).toEqual(['abc']);
    // "abcb": b-c merges first (leftmost of equal candidates), giving a|bc|b → abc|b.
    expect(tok.encode('abcb', { addBos: false }).map((i) => tok.piece(i))).toEqual(['abc', 'b']);
    // "bcbc": two equal-score "bc" candidates; the leftmost merges first.
    expect(tok.encode('bcbc', { addBos: false }).map((i) => tok.piece(i))).toEqual(['bc', 'bc']);
  });

  test('unknown characters fall back to UTF-8 byte tokens', () => {
    const ids = spm.encode('🎉', { addBos: false });
    const pieces = ids.map((i) => spm.piece(i));
    expect(pieces).toEqual(['▁', '<0xF0>', '<0x9F>', '<0x8E>', '<0x89>']);
    for (const id of ids.slice(1)) expect(spm.tokenType(id)).toBe(TokenType.BYTE);
  });

  test('a character split over byte tokens streams out once, whole', () => {
    const ids = spm.encode('a🎉b', { addBos: false });
    const d = spm.newStreamDecoder();
    const parts = ids.map((id) => d.push(id));
    parts.push(d.flush());
    expect(parts.join('')).toBe(' a🎉b');
    expect(parts.filter((p) => p.includes('🎉'))).toEqual(['🎉']);
    expect(parts.some((p) => p.includes('\uFFFD'))).toBe(false);
    // The three bytes before the last are held back.
    const byteIdx = ids.findIndex((id) => spm.piece(id) === '<0xF0>');
    expect(parts.slice(byteIdx, byteIdx + 3)).toEqual(['', '', '']);
  });

  test('flush turns an unfinished character into U+FFFD', () => {
    const d = spm.newStreamDecoder();
    const f0 = spm.encode('🎉', { addBos: false }).find((id) => spm.piece(id) === '<0xF0>')!;
    expect(d.push(f0)).toBe('');
    expect(d.flush()).toBe('\uFFFD');
  });

  test('a generated continuation keeps its leading space; text start drops it', () => {
    const ids = spm.encode('world', { addBos: false });
    expect(spm.decode(ids)).toBe('world');
    const d = spm.newStreamDecoder();
    expect(ids.map((id) => d.push(id)).join('') + d.flush()).toBe(' world');
  });

  test('control tokens are parsed only on request and decode to nothing', () => {
    const plain = spm.encode('<s>hi', { addBos: false });
    expect(plain).not.toContain(1);
    const parsed = spm.encode('<s>hi', { addBos: false, parseSpecial: true });
    expect(parsed[0]).toBe(1);
    // The text after a special token gets the space prefix again.
    expect(spm.piece(parsed[1]!).startsWith('▁')).toBe(true);
    expect(spm.decode(parsed)).toBe('hi');
  });

  test('add_space_prefix = false is honoured', () => {
    const entries = vocabMetadata(spmVocab);
    entries.push(['tokenizer.ggml.add_space_prefix', meta.bool(false)]);
    const tok = tokenizerFromGguf(metadataSource(entries));
    const ids = tok.encode('Hello', { addBos: false });
    expect(tok.piece(ids[0]!).startsWith('▁')).toBe(false);
    expect(tok.decode(ids)).toBe('Hello');
  });

  test('defaults follow llama.cpp: add BOS, </s> ends generation', () => {
    expect(spm.addBos).toBe(true);
    expect(spm.bosId).toBe(1);
    expect(spm.eosId).toBe(2);
    expect(spm.isEog(2)).toBe(true);
    expect(spm.isEog(1)).toBe(false);
    expect([...spm.eotIds]).toEqual([2]);
  });
});

describe('byte-level BPE specifics', () => {
  test('the byte map is a bijection onto printable characters', () => {
    const seen = new Set<string>();
    for (let b = 0; b < 256; b++) {
      const ch = byteToUnicode(b);
      expect(unicodeToByte(ch.codePointAt(0)!)).toBe(b);
      expect(/\s/.test(ch)).toBe(false);
      seen.add(ch);
    }
    expect(seen.size).toBe(256);
    expect(byteEncode(' a\n')).toBe('ĠaĊ');
  });

  test('Llama 3 pre-tokenizer splits as llama.cpp does', () => {
    expect(preTokenize('llama3', "Hello world, it's 1234567!")).toEqual(['Hello', ' world', ',', ' it', "'s", ' ', '123', '456', '7', '!']);
    expect(preTokenize('llama3', 'a  b\n\n  c   ')).toEqual(['a', ' ', ' b', '\n\n', ' ', ' c', '   ']);
    expect(preTokenize('llama3', "DON'T 'Re")).toEqual(['DON', "'T", " '", 'Re']);
    expect(preTokenize('llama3', 'x = {y}\n')).toEqual(['x', ' =', ' {', 'y', '}\n']);
  });

  test('GPT-2 pre-tokenizer splits as llama.cpp does', () => {
    expect(preTokenize('gpt2', "Hello world, it's 1234567!")).toEqual(['Hello', ' world', ',', ' it', "'s", ' 1234567', '!']);
    expect(preTokenize('gpt2', 'a  b\n\n  c   ')).toEqual(['a', ' ', ' b', '\n\n ', ' c', '   ']);
    expect(preTokenize('gpt2', "DON'T")).toEqual(['DON', "'", 'T']);
  });

  test('merges by rank produce known pieces and defaults follow llama.cpp', () => {
    const ids = bpe.encode(' the', { addBos: false });
    expect(ids.map((i) => bpe.piece(i))).toEqual(['Ġthe']);
    expect(bpe.addBos).toBe(true); // llama-bpe
    expect(tokenizers[3]![1].addBos).toBe(false); // gpt-2
    expect(bpe.piece(bpe.bosId!)).toBe('<|begin_of_text|>');
    expect(bpe.isEog(bpe.eosId!)).toBe(true);
  });

  test('special tokens only with parseSpecial', () => {
    const text = '<|begin_of_text|>hi';
    expect(bpe.encode(text, { addBos: false })).not.toContain(bpe.bosId);
    expect(bpe.encode(text, { addBos: false, parseSpecial: true })[0]).toBe(bpe.bosId);
    expect(bpe.decode(bpe.encode(text, { addBos: false, parseSpecial: true }))).toBe('hi');
  });

  test('multi-byte characters stream out whole', () => {
    const ids = bpe.encode('ok 🎉🚀', { addBos: false });
    const d = bpe.newStreamDecoder();
    const parts = ids.map((id) => d.push(id));
    expect(parts.join('') + d.flush()).toBe('ok 🎉🚀');
    for (const p of parts) expect(p.includes('\uFFFD')).toBe(false);
  });
});

describe('errors', () => {
  test('unsupported pre-tokenizer names the supported ones', () => {
    const v = { ...gpt2Vocab, pre: 'qwen2' };
    expect(() => tokenizerFromVocab(v)).toThrow(/unsupported pre-tokenizer 'qwen2'.*gpt-2.*llama-bpe/);
  });

  test('unsupported tokenizer model', () => {
    const entries = vocabMetadata(spmVocab);
    entries.push(['tokenizer.ggml.model', meta.str('bert')]); // later entries win in metadataSource
    expect(() => tokenizerFromGguf(metadataSource(entries))).toThrow(/unsupported tokenizer.ggml.model 'bert'/);
  });

  test('duplicate pieces are rejected', () => {
    const tokens = [...tinySpmVocab.tokens];
    tokens[tokens.length - 1] = tokens[tokens.length - 2]!;
    expect(() => tokenizerFromVocab({ ...tinySpmVocab, tokens })).toThrow(/duplicate piece/);
  });

  test('out-of-range ids throw', () => {
    expect(() => spm.piece(spm.vocabSize)).toThrow(RangeError);
    expect(() => spm.newStreamDecoder().push(-1)).toThrow(RangeError);
  });
});

describe('synthetic vocabularies', () => {
  test.each([
    ['spm', (seed: number) => syntheticSpmVocab({ size: 1500, seed })],
    ['bpe', (seed: number) => syntheticBpeVocab({ size: 1500, seed })],
  ] as const)('%s: exact size, unique pieces, deterministic per seed', (_n, make) => {
    const a = make(1);
    expect(a.tokens.length).toBe(1500);
    expect(new Set(a.tokens).size).toBe(1500);
    expect(a.tokenTypes.length).toBe(1500);
    expect(make(1)).toEqual(a);
    expect(make(2).tokens).not.toEqual(a.tokens);
  });

  test('spm layout: <unk> <s> </s>, 256 byte tokens, pieces with descending scores reachable by merges', () => {
    const v = syntheticSpmVocab({ size: 4000, seed: 9 });
    expect(v.tokens.slice(0, 3)).toEqual(['<unk>', '<s>', '</s>']);
    expect([...v.tokenTypes.slice(0, 3)]).toEqual([TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL]);
    for (let b = 0; b < 256; b++) {
      expect(v.tokens[3 + b]).toBe(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
      expect(v.tokenTypes[3 + b]).toBe(TokenType.BYTE);
    }
    const earlier = new Set<string>();
    for (let i = 259; i < v.tokens.length; i++) {
      const p = v.tokens[i]!;
      if (i > 259) expect(v.scores![i]!).toBeLessThan(v.scores![i - 1]!);
      const chars = [...p];
      if (chars.length > 1) {
        // Some split into two earlier pieces must exist, or llama.cpp could never produce this piece.
        let reachable = false;
        for (let k = 1; k < chars.length && !reachable; k++) {
          reachable = earlier.has(chars.slice(0, k).join('')) && earlier.has(chars.slice(k).join(''));
        }
        expect(reachable, p).toBe(true);
      }
      earlier.add(p);
    }
    expect(v.tokens).toContain('▁the');
  });

  test('bpe merges are consistent and every merged token has a merge', () => {
    const v = syntheticBpeVocab({ size: 4000, seed: 9 });
    const ids = new Map(v.tokens.map((t, i) => [t, i]));
    for (let b = 0; b < 256; b++) expect(v.tokens[b]).toBe(byteToUnicode(b));
    const produced = new Set<string>();
    for (const m of v.merges!) {
      const [a, b] = m.split(' ') as [string, string];
      expect(ids.has(a) && ids.has(b) && ids.has(a + b), m).toBe(true);
      produced.add(a + b);
    }
    for (let i = 256; i < v.tokens.length; i++) {
      if (v.tokenTypes[i] === TokenType.NORMAL) expect(produced.has(v.tokens[i]!)).toBe(true);
    }
    expect(v.tokens.slice(-2)).toEqual(['<|begin_of_text|>', '<|end_of_text|>']);
    expect([...v.tokenTypes.slice(-2)]).toEqual([TokenType.CONTROL, TokenType.CONTROL]);
    expect(v.tokens).toContain('Ġthe');
  });

  test('a 32000-piece SentencePiece vocabulary has no duplicate pieces', () => {
    const v = syntheticSpmVocab({ size: 32000, seed: 1 });
    expect(v.tokens.length).toBe(32000);
    expect(new Set(v.tokens).size).toBe(32000);
  });
});
