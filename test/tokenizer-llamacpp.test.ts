/**
 * Conformance of our tokenizers with llama.cpp (node-llama-cpp 3.21.1): synthetic vocabularies are written into
 * tiny GGUF models, loaded vocab-only by llama.cpp, and both sides tokenize the same texts.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { getLlama, LlamaLogLevel, type Llama, type LlamaModel, type Token } from 'node-llama-cpp';
import { openGguf } from '../src/engine/gguf/reader.js';
import { SplitMix32 } from '../src/engine/prng.js';
import {
  syntheticBpeVocab,
  syntheticSpmVocab,
  tokenizerFromGguf,
  TokenType,
  type SyntheticVocab,
  type Tokenizer,
} from '../src/engine/tokenizer/index.js';
import { SYNTHETIC_CORPUS } from '../src/engine/tokenizer/synthetic-corpus.js';
import { writeTinyLlama } from './helpers/tiny-model.js';

const TEXTS: readonly string[] = [
  '',
  ' ',
  '  ',
  '   ',
  '\n',
  '\n\n',
  ' \n',
  '\t',
  'Hello world',
  ' Hello world',
  '  Hello  world  ',
  'Hello\nworld',
  'Hello\n\n\nworld',
  'line1\r\nline2\r\n',
  'The quick brown fox jumps over the lazy dog.',
  "We're going; don't forget! It's 5 o'clock, they'll see what we've done.",
  "I'M SHOUTING 'RE 'VE 'LL 'D",
  "' '' ''' 's",
  '1234567890',
  '3.14159 2,718 1e-9 0x1F 007',
  'a1b2c3 x86_64 utf-8',
  'function add(a, b) { return a + b; }',
  'if (x == 1) {\n    return;\n}\n',
  '    indented code\n\tand tabs\n\t\tdeeper',
  'def f(x):\n    """doc"""\n    return x ** 2  # square',
  'Le café est très bon, déjà vu.',
  'Über die Straße, schön!',
  'El niño come mañana.',
  'Привет, мир! Как дела?',
  'Γειά σου κόσμε',
  '中文是世界上使用人数最多的语言之一。',
  '日本語のテキストです',
  '한국어 텍스트',
  'mixed English中文русский ελληνικά',
  '😀',
  '👍🏽',
  '🎉🚀 party',
  'emoji 😀 in text 😀😀 ok',
  'family 👨‍👩‍👧‍👦 zwj',
  'combining e\u0301 vs é',
  '\u00a0nbsp\u2003em space\u3000ideographic',
  'next\u0085line and zero\u200bwidth',
  '<s> not special </s> <unk>',
  '<|begin_of_text|> text <|end_of_text|>',
  '   leading spaces',
  'trailing spaces   ',
  'tab\tseparated\tvalues',
  'a  b   c    d     e',
  'https://example.com/path?q=1&r=2#frag user@example.com',
  '<html><body class="x">Hi</body></html>',
  '{"key": "value", "n": [1, 2, 3], "ok": true}',
  '$100.00 + €50 = ¥? £3',
  'x^2 + y^2 = z^2 ∑∫√∞ ≤ ≥',
  'ALL CAPS TEXT',
  // Repeated characters make equal-score merges compete; llama.cpp takes the leftmost.
  'balll fulll seee gooood tooo aaa',
  'the the the thethethe',
  '........ ====== ------ 1111111',
  '\nlll\neee\nooo\nsss\nttt\nfff\nrrr\n',
  '...!!!???---___',
  'lone \ud800 surrogate',
  '<tool>call</tool> <|eot_id|> <|im_start|>user\nhi',
  ' <tool> x<tool>y<tool><tool>',
  SYNTHETIC_CORPUS.join(' '),
  SYNTHETIC_CORPUS.slice(0, 10).join('\n'),
];

/** Seeded random strings over an alphabet that mixes everything the tokenizers treat specially. */
function randomTexts(seed: number, count: number): string[] {
  const alphabet = [
    ...'abcdefghijklmnopqrstuvwxyzTHE0123456789',
    ' ', ' ', ' ', ' ', '\n', '\t', '\r', "'", '.', ',', '!', '?', '(', ')', '{', '}', '<', '>', '/', '_', '-',
    'é', 'ü', 'ß', 'ñ', 'π', 'я', 'д', '中', '文', 'の', '한', '😀', '🎉', '\u00a0', '\u3000', '\u200b', '▁', 'Ġ',
    '<s>', '</s>', 'the', 'ing', ' the', "'s", "'re", 'tion',
  ];
  const rng = new SplitMix32(seed);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const len = rng.nextU32() % 24;
    let s = '';
    for (let j = 0; j < len; j++) s += alphabet[rng.nextU32() % alphabet.length];
    out.push(s);
  }
  return out;
}

const ALL_TEXTS = [...TEXTS, ...randomTexts(7, 300)];

/**
 * Texts made of the vocabulary's own pieces: whole-word lookups (Llama 3's ignore_merges) and merge paths that
 * do not lead back to the piece only show up on such words.
 */
function pieceTexts(t: Tokenizer, seed: number, count: number): string[] {
  const rng = new SplitMix32(seed);
  const dec = new TextDecoder();
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const n = 1 + (rng.nextU32() % 4);
    let s = '';
    for (let j = 0; j < n; j++) s += dec.decode(t.tokenBytes(rng.nextU32() % t.vocabSize));
    out.push(s);
  }
  return out;
}

let llama: Llama;
let dir: string;

beforeAll(async () => {
  llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'butterfly-tok-'));
});

afterAll(async () => {
  await llama?.dispose();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

interface Pair {
  ours: Tokenizer;
  ref: LlamaModel;
}

async function load(name: string, vocab: SyntheticVocab): Promise<Pair> {
  const file = path.join(dir, `${name}.gguf`);
  writeTinyLlama(file, { vocab, seed: 99 });
  const g = openGguf(file);
  try {
    const ours = tokenizerFromGguf(g);
    const ref = await llama.loadModel({ modelPath: file, vocabOnly: true });
    return { ours, ref };
  } finally {
    g.close();
  }
}

function expectSameTokens(p: Pair, texts: readonly string[], parseSpecial: boolean): void {
  const mismatches: string[] = [];
  for (const text of texts) {
    const want = p.ref.tokenize(text, parseSpecial).map(Number);
    const got = p.ours.encode(text, { addBos: false, parseSpecial });
    if (JSON.stringify(want) !== JSON.stringify(got)) {
      mismatches.push(`${JSON.stringify(text)}\n  llama.cpp: ${JSON.stringify(want)}\n  ours:      ${JSON.stringify(got)}`);
    }
  }
  expect(mismatches.slice(0, 5).join('\n')).toBe('');
}

function expectSameSpecials(p: Pair): void {
  expect(p.ours.bosId).toBe(p.ref.tokens.bos === null ? null : Number(p.ref.tokens.bos));
  expect(p.ours.eosId).toBe(p.ref.tokens.eos === null ? null : Number(p.ref.tokens.eos));
  expect(p.ours.addBos).toBe(p.ref.tokens.shouldPrependBosToken);
  for (let id = 0; id < p.ours.vocabSize; id++) {
    if (p.ours.isEog(id) !== p.ref.isEogToken(id as Token)) throw new Error(`EOG disagreement on token ${id}`);
  }
}

/**
 * The vocabulary with its last pieces replaced: a user-defined token (always split out of text), a control token,
 * and an end-of-turn token typed NORMAL (llama.cpp promotes it to control and end-of-generation by its text).
 */
function withExtraSpecials(v: SyntheticVocab): SyntheticVocab {
  const tokens = [...v.tokens];
  const tokenTypes = Int32Array.from(v.tokenTypes);
  const n = v.model === 'gpt2' ? tokens.length - 2 : tokens.length; // keep BPE's BOS/EOS at the end
  const extra: Array<[string, TokenType]> = [
    ['<tool>', TokenType.USER_DEFINED],
    ['<|im_start|>', TokenType.CONTROL],
    ['<|eot_id|>', TokenType.NORMAL],
  ];
  extra.forEach(([text, type], i) => {
    tokens[n - 1 - i] = text;
    tokenTypes[n - 1 - i] = type;
  });
  // Merges that produced the replaced pieces would now be inconsistent; drop them.
  const merges = v.merges?.filter((m) => !extra.some(([t]) => m.replace(' ', '') === t) && tokens.includes(m.replace(' ', '')));
  return { ...v, tokens, tokenTypes, ...(merges ? { merges } : {}) };
}

const cases: ReadonlyArray<[string, () => SyntheticVocab]> = [
  ['spm-2000', () => syntheticSpmVocab({ size: 2000, seed: 11 })],
  ['spm-32000', () => syntheticSpmVocab({ size: 32000, seed: 12 })],
  ['spm-300', () => syntheticSpmVocab({ size: 300, seed: 13 })],
  ['bpe-llama3-2000', () => syntheticBpeVocab({ size: 2000, seed: 21 })],
  ['bpe-llama3-8000', () => syntheticBpeVocab({ size: 8000, seed: 22 })],
  ['bpe-gpt2-2000', () => syntheticBpeVocab({ size: 2000, seed: 23, pre: 'gpt-2' })],
  ['spm-2000-specials', () => withExtraSpecials(syntheticSpmVocab({ size: 2000, seed: 14 }))],
  ['bpe-llama3-2000-specials', () => withExtraSpecials(syntheticBpeVocab({ size: 2000, seed: 24 }))],
];

describe.each(cases)('%s', (name, makeVocab) => {
  let pair: Pair;
  beforeAll(async () => {
    pair = await load(name, makeVocab());
  });
  afterAll(async () => {
    await pair?.ref.dispose();
  });

  test('same ids as llama.cpp for varied and random texts', () => {
    expectSameTokens(pair, ALL_TEXTS, false);
  });

  test('same ids as llama.cpp for texts built from vocabulary pieces', () => {
    expectSameTokens(pair, pieceTexts(pair.ours, 5, 400), false);
  });

  test('same ids as llama.cpp with special-token parsing', () => {
    expectSameTokens(pair, ALL_TEXTS.filter((t) => t.includes('<')), true);
  });

  test('same BOS / EOS / add-BOS / end-of-generation set', () => {
    expectSameSpecials(pair);
  });

  test('decode agrees with llama.cpp detokenize where llama.cpp is lossless (SentencePiece)', () => {
    if (pair.ours.kind !== 'llama') return; // llama.cpp's BPE detokenizer drops spaces before punctuation
    for (const text of TEXTS) {
      const ids = pair.ours.encode(text, { addBos: false });
      // After a special token we also drop the prefix space the encoder added; llama.cpp keeps it.
      if (ids.some((id) => pair.ours.tokenType(id) !== TokenType.NORMAL && pair.ours.tokenType(id) !== TokenType.BYTE)) continue;
      expect(pair.ours.decode(ids)).toBe(pair.ref.detokenize(ids as Token[]));
    }
  });
});
