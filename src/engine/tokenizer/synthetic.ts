import { meta, type GgufMetaEntry } from '../gguf/values.js';
import { SplitMix32 } from '../prng.js';
import { trainMerges } from './merge-trainer.js';
import { preTokenize } from './pretokenize.js';
import { SYNTHETIC_CORPUS } from './synthetic-corpus.js';
import { TokenType } from './token-types.js';
import { bytePieceText, byteEncode, byteToUnicode, unicodeToByte } from './unicode.js';

/** A vocabulary for a synthesized model, in the shape the GGUF tokenizer.ggml.* keys take. */
export interface SyntheticVocab {
  model: 'llama' | 'gpt2';
  tokens: string[];
  scores?: Float32Array;
  tokenTypes: Int32Array;
  merges?: string[];
  bosId: number;
  eosId: number;
  unkId?: number;
  pre?: string;
  /** Written as tokenizer.ggml.add_bos_token when set; otherwise llama.cpp's default for the model applies. */
  addBos?: boolean;
}

export interface SyntheticVocabOptions {
  readonly size: number;
  readonly seed: number;
}

const SPACE_MARK = '\u2581';
const MAX_PIECE_CHARS = 16;

/**
 * Characters a SentencePiece vocabulary gets as single pieces, most useful first so tiny vocabularies keep the
 * common ones. Newline, tab and most emoji are deliberately absent: they exercise byte fallback.
 */
const SPM_ALPHABET: readonly string[] = [
  SPACE_MARK,
  ...'etaoinshrdlcumwfgypbvkjxqz',
  ...'.,',
  ...'TAISHWCBMPDRLFNGOEUYKJVQXZ',
  ...'0123456789',
  ...'\'"-:;!?()[]{}<>/\\_=+*&^%$#@~`|',
  ...'éèêàâçôûüöäßñáíóúøåæœ',
  ...'αβγδεζηθικλμνξοπρστυφχψωάέήίόύώ',
  ...'абвгдеёжзийклмнопрстуфхцчшщъыьэюяПКМЭ',
  ...'中文是世界上使用人数最多的语言之一我们在学习和日本',
  ...'のにはをたがでしてとひらかなカタ',
  ...'한국어',
  '😀',
  '👍',
];

/** Weighted training words: each corpus line is repeated a seeded number of times so seeds differ. */
function corpusWeights(rng: SplitMix32): number[] {
  return SYNTHETIC_CORPUS.map(() => 1 + (rng.nextU32() % 12));
}

function addWord(words: Map<string, number>, w: string, count: number): void {
  words.set(w, (words.get(w) ?? 0) + count);
}

/** Biased pick toward the front (earlier = more frequent) of a list. */
function pickFront<T>(rng: SplitMix32, list: readonly T[]): T {
  const u = rng.nextFloat();
  return list[Math.floor(u * u * list.length)]!;
}

/**
 * SentencePiece ("llama") vocabulary: <unk>=0, <s>=1, </s>=2, the 256 byte-fallback tokens <0x00>..<0xFF>, then
 * pieces with strictly descending scores: single characters, merges learned on a small corpus, and — to reach
 * large sizes — seeded concatenations of existing pieces. Every multi-character piece is the concatenation of two
 * earlier pieces, so llama.cpp's score-ordered merging can reach it. No two tokens are equal.
 */
export function syntheticSpmVocab(opts: SyntheticVocabOptions): SyntheticVocab {
  const { size, seed } = opts;
  const fixed = 3 + 256;
  if (!Number.isInteger(size) || size < fixed + 1) throw new RangeError(`syntheticSpmVocab: size must be an integer ≥ ${fixed + 1}`);
  const rng = new SplitMix32(seed);
  const tokens = ['<unk>', '<s>', '</s>'];
  const types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL];
  for (let b = 0; b < 256; b++) {
    tokens.push(bytePieceText(b));
    types.push(TokenType.BYTE);
  }
  const taken = new Set(tokens);
  const pieces: string[] = [];
  const addPiece = (p: string): boolean => {
    if (taken.has(p) || p.length === 0 || tokens.length + pieces.length >= size) return false;
    taken.add(p);
    pieces.push(p);
    return true;
  };

  const budget = size - fixed;
  // Tiny vocabularies keep room for merges: at most ~40% single characters, but always ▁ and a–z.
  const nChars = Math.min(SPM_ALPHABET.length, Math.max(27, Math.floor(budget * 0.4)), budget);
  for (const ch of SPM_ALPHABET.slice(0, nChars)) addPiece(ch);

  const words = new Map<string, number>();
  const weights = corpusWeights(rng);
  SYNTHETIC_CORPUS.forEach((line, i) => {
    for (const w of line.split(/[ \n\t]+/)) if (w) addWord(words, SPACE_MARK + w, weights[i]!);
  });
  const training = [...words].map(([w, count]) => ({ symbols: [...w], count }));
  const room = size - tokens.length - pieces.length;
  for (const m of trainMerges(training, new Set(pieces), room, MAX_PIECE_CHARS)) addPiece(m.left + m.right);
  fillByConcatenation(rng, pieces, addPiece, size - tokens.length, (p) => p.replaceAll(SPACE_MARK, ' '));

  const scores = new Float32Array(size);
  for (const p of pieces) {
    scores[tokens.length] = -(tokens.length - fixed);
    tokens.push(p);
    types.push(TokenType.NORMAL);
  }
  return { model: 'llama', tokens, scores, tokenTypes: Int32Array.from(types), bosId: 1, eosId: 2, unkId: 0 };
}

const SCRIPTS: ReadonlyArray<[string, RegExp]> = [
  ['Latin', /\p{Script=Latin}/u],
  ['Greek', /\p{Script=Greek}/u],
  ['Cyrillic', /\p{Script=Cyrillic}/u],
  ['Han', /\p{Script=Han}/u],
  ['Kana', /[\p{Script=Hiragana}\p{Script=Katakana}]/u],
  ['Hangul', /\p{Script=Hangul}/u],
];

/**
 * Kind of text a piece holds — letters of one script, digits, or punctuation, optionally after one leading
 * space — or null when it mixes kinds. Grown pieces only join pieces of one kind, so they look like subwords.
 */
function textKind(text: string): { space: boolean; kind: string } | null {
  const space = text.startsWith(' ');
  const body = space ? text.slice(1) : text;
  if (body.length === 0) return null;
  let kind: string | null = null;
  for (const ch of body) {
    let k: string;
    if (/\p{L}/u.test(ch)) k = SCRIPTS.find(([, re]) => re.test(ch))?.[0] ?? 'L';
    else if (/\p{N}/u.test(ch)) k = 'N';
    else if (/[\p{P}\p{S}]/u.test(ch)) k = 'P';
    else return null;
    if (kind !== null && k !== kind) return null;
    kind = k;
  }
  return { space, kind: kind! };
}

/**
 * Grows `pieces` to `target` entries by joining two existing pieces of the same kind (front-biased picks): the
 * right part never starts with a space, the result is new and at most MAX_PIECE_CHARS characters. `asText`
 * gives a piece's text, or null for pieces that are not whole characters.
 */
function fillByConcatenation(
  rng: SplitMix32,
  pieces: string[],
  addPiece: (p: string, left: string, right: string) => boolean,
  target: number,
  asText: (piece: string) => string | null,
): void {
  const kinds = new Map<string, ReturnType<typeof textKind>>();
  const kindOf = (p: string): ReturnType<typeof textKind> => {
    if (!kinds.has(p)) {
      const t = asText(p);
      kinds.set(p, t === null ? null : textKind(t));
    }
    return kinds.get(p)!;
  };
  let misses = 0;
  while (pieces.length < target) {
    const a = pickFront(rng, pieces);
    const b = pickFront(rng, pieces);
    const ka = kindOf(a);
    const kb = kindOf(b);
    const joined = a + b;
    const ok = ka !== null && kb !== null && !kb.space && ka.kind === kb.kind && [...joined].length <= MAX_PIECE_CHARS;
    if (ok && addPiece(joined, a, b)) {
      misses = 0;
    } else if (++misses > 5_000_000) {
      throw new Error(`synthetic vocab: cannot grow past ${pieces.length} pieces`);
    }
  }
}

export interface SyntheticBpeOptions extends SyntheticVocabOptions {
  /** Pre-tokenizer written to tokenizer.ggml.pre: Llama 3's (default) or GPT-2's. */
  readonly pre?: 'llama-bpe' | 'gpt-2';
}

/**
 * Byte-level BPE ("gpt2") vocabulary: ids 0..255 are GPT-2's byte characters in byte order, then one token per
 * merge (learned on the corpus after pre-tokenization, then seeded concatenations), then <|begin_of_text|> and
 * <|end_of_text|> as CONTROL. Merges are consistent: for every merge "a b", a, b and ab are all tokens, and every
 * non-byte token is produced by a merge.
 */
export function syntheticBpeVocab(opts: SyntheticBpeOptions): SyntheticVocab {
  const { size, seed } = opts;
  const pre = opts.pre ?? 'llama-bpe';
  const specials = ['<|begin_of_text|>', '<|end_of_text|>'];
  const fixed = 256 + specials.length;
  if (!Number.isInteger(size) || size < fixed + 1) throw new RangeError(`syntheticBpeVocab: size must be an integer ≥ ${fixed + 1}`);
  const rng = new SplitMix32(seed);
  const pieces: string[] = [];
  for (let b = 0; b < 256; b++) pieces.push(byteToUnicode(b));
  const taken = new Set([...pieces, ...specials]);
  const merges: string[] = [];
  const target = size - specials.length;
  const addMerge = (joined: string, left: string, right: string): boolean => {
    if (pieces.length >= target) return false;
    const isNew = !taken.has(joined);
    // A merge may produce a token another merge already made (real GPT-2 vocabularies have such pairs).
    if (isNew || rng.nextFloat() < 0.02) merges.push(`${left} ${right}`);
    if (!isNew) return false;
    taken.add(joined);
    pieces.push(joined);
    return true;
  };

  const words = new Map<string, number>();
  const weights = corpusWeights(rng);
  SYNTHETIC_CORPUS.forEach((line, i) => {
    for (const w of preTokenize(pre === 'gpt-2' ? 'gpt2' : 'llama3', line)) addWord(words, byteEncode(w), weights[i]!);
  });
  const training = [...words].map(([w, count]) => ({ symbols: [...w], count }));
  for (const m of trainMerges(training, new Set(pieces), target - pieces.length, MAX_PIECE_CHARS)) addMerge(m.left + m.right, m.left, m.right);
  fillByConcatenation(rng, pieces, addMerge, target, byteLevelText);

  const tokens = [...pieces, ...specials];
  const types = new Int32Array(tokens.length).fill(TokenType.NORMAL);
  types[tokens.length - 2] = TokenType.CONTROL;
  types[tokens.length - 1] = TokenType.CONTROL;
  return { model: 'gpt2', tokens, tokenTypes: types, merges, bosId: tokens.length - 2, eosId: tokens.length - 1, pre };
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
/** Text a byte-level piece stands for, or null if it is not whole UTF-8 characters. */
function byteLevelText(piece: string): string | null {
  const bytes: number[] = [];
  for (const ch of piece) bytes.push(unicodeToByte(ch.codePointAt(0)!));
  try {
    return strictUtf8.decode(Uint8Array.from(bytes));
  } catch {
    return null;
  }
}

/** tokenizer.ggml.* metadata entries describing the vocabulary, ready for the GGUF writer. */
export function vocabMetadata(v: SyntheticVocab): Array<[string, GgufMetaEntry]> {
  const n = v.tokens.length;
  if (v.tokenTypes.length !== n) throw new Error(`vocabMetadata: ${v.tokenTypes.length} token types for ${n} tokens`);
  if (v.scores && v.scores.length !== n) throw new Error(`vocabMetadata: ${v.scores.length} scores for ${n} tokens`);
  const out: Array<[string, GgufMetaEntry]> = [['tokenizer.ggml.model', meta.str(v.model)]];
  if (v.pre !== undefined) out.push(['tokenizer.ggml.pre', meta.str(v.pre)]);
  out.push(['tokenizer.ggml.tokens', meta.strArr(v.tokens)]);
  if (v.scores) out.push(['tokenizer.ggml.scores', meta.f32Arr(v.scores)]);
  out.push(['tokenizer.ggml.token_type', meta.i32Arr(v.tokenTypes)]);
  if (v.merges) out.push(['tokenizer.ggml.merges', meta.strArr(v.merges)]);
  out.push(['tokenizer.ggml.bos_token_id', meta.u32(v.bosId)]);
  out.push(['tokenizer.ggml.eos_token_id', meta.u32(v.eosId)]);
  if (v.unkId !== undefined) out.push(['tokenizer.ggml.unknown_token_id', meta.u32(v.unkId)]);
  if (v.addBos !== undefined) out.push(['tokenizer.ggml.add_bos_token', meta.bool(v.addBos)]);
  return out;
}
