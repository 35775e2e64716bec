import { SUPPORTED_PRE } from './pretokenize.js';
import { VocabTokenizer } from './tokenizer.js';
import type { Tokenizer } from './types.js';
import type { TokenizerKind, VocabConfig } from './vocab.js';

/** The part of a GGUF file the tokenizer reads (structural, so any reader or an in-memory table fits). */
export interface GgufMetadataSource {
  getString(key: string, fallback?: string): string;
  getNumber(key: string, fallback?: number): number;
  getBool(key: string, fallback?: boolean): boolean;
  getArray(key: string): unknown;
  has(key: string): boolean;
}

const K = 'tokenizer.ggml.';

function stringArray(src: GgufMetadataSource, key: string): string[] {
  const v = src.getArray(key);
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new Error(`tokenizer: ${key} must be an array of strings`);
  return v as string[];
}

function numberArray(src: GgufMetadataSource, key: string): ArrayLike<number> | undefined {
  if (!src.has(key)) return undefined;
  const v = src.getArray(key);
  if (v instanceof Float32Array || v instanceof Int32Array || v instanceof Float64Array || v instanceof Uint32Array) return v;
  if (Array.isArray(v) && v.every((x) => typeof x === 'number')) return v as number[];
  throw new Error(`tokenizer: ${key} must be a numeric array`);
}

function bool(src: GgufMetadataSource, key: string, dflt: boolean): boolean {
  return src.has(key) ? src.getBool(key) : dflt;
}

/**
 * Special ids as llama.cpp resolves them: a per-model default (dropped if outside the vocabulary), replaced by
 * the metadata value when that is inside the vocabulary.
 */
function specialId(src: GgufMetadataSource, name: string, dflt: number | null, n: number): number | null {
  let id = dflt !== null && dflt < n ? dflt : null;
  const key = `${K}${name}_token_id`;
  if (src.has(key)) {
    const v = src.getNumber(key);
    if (Number.isInteger(v) && v >= 0 && v < n) id = v;
  }
  return id;
}

/** Reads tokenizer.ggml.* metadata into a resolved vocabulary description. */
export function vocabConfigFromGguf(src: GgufMetadataSource): VocabConfig {
  const model = src.getString(`${K}model`);
  if (model !== 'llama' && model !== 'gpt2') {
    throw new Error(`tokenizer: unsupported tokenizer.ggml.model '${model}'; supported: llama (SentencePiece), gpt2 (byte-level BPE)`);
  }
  const kind: TokenizerKind = model;
  const tokens = stringArray(src, `${K}tokens`);
  const n = tokens.length;
  const pre = src.has(`${K}pre`) ? src.getString(`${K}pre`) : undefined;
  if (kind === 'gpt2' && !src.has(`${K}merges`)) throw new Error('tokenizer: cannot find tokenizer.ggml.merges');
  const isLlama3 = pre !== undefined && SUPPORTED_PRE[pre] === 'llama3';
  const scores = numberArray(src, `${K}scores`);
  const tokenTypes = numberArray(src, `${K}token_type`);
  return {
    kind,
    tokens,
    ...(scores ? { scores } : {}),
    ...(tokenTypes ? { tokenTypes } : {}),
    ...(kind === 'gpt2' ? { merges: stringArray(src, `${K}merges`) } : {}),
    ...(pre !== undefined ? { pre } : {}),
    // llama.cpp's defaults: SentencePiece <unk>=0 <s>=1 </s>=2; GPT-2 BPE uses 11 for both BOS and EOS.
    bosId: specialId(src, 'bos', kind === 'llama' ? 1 : 11, n),
    eosId: specialId(src, 'eos', kind === 'llama' ? 2 : 11, n),
    unkId: specialId(src, 'unknown', kind === 'llama' ? 0 : null, n),
    eotId: specialId(src, 'eot', null, n),
    eomId: specialId(src, 'eom', null, n),
    addBos: bool(src, `${K}add_bos_token`, kind === 'llama' || isLlama3),
    addSpacePrefix: bool(src, `${K}add_space_prefix`, kind === 'llama'),
  };
}

/** Builds the tokenizer a GGUF file describes; ids match llama.cpp's for the same file. */
export function tokenizerFromGguf(src: GgufMetadataSource): Tokenizer {
  return new VocabTokenizer(vocabConfigFromGguf(src));
}
