import {
  ATTR_CONTROL,
  ATTR_UNKNOWN,
  ATTR_USER_DEFINED,
  attrFromType,
  ATTR_NORMAL,
  TokenType,
} from './token-types.js';
import { bytePieceText, utf8 } from './unicode.js';

export type TokenizerKind = 'llama' | 'gpt2';

/** Everything a tokenizer needs, resolved from GGUF metadata (defaults already applied). */
export interface VocabConfig {
  readonly kind: TokenizerKind;
  readonly tokens: readonly string[];
  /** SentencePiece merge priorities (higher merges first); absent → all 0. */
  readonly scores?: ArrayLike<number>;
  /** TokenType per token; absent → all NORMAL. */
  readonly tokenTypes?: ArrayLike<number>;
  /** BPE merges "a b", rank = index. */
  readonly merges?: readonly string[];
  /** BPE pre-tokenizer name (tokenizer.ggml.pre). */
  readonly pre?: string;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly unkId: number | null;
  /** Explicit eot/eom ids from metadata; when null they are found by text as llama.cpp does. */
  readonly eotId: number | null;
  readonly eomId: number | null;
  readonly addBos: boolean;
  readonly addSpacePrefix: boolean;
}

// Token texts llama.cpp treats as end-of-generation (llama-vocab.cpp keeps the same list, matched by text).
const EOG_TEXTS = new Set([
  '<|eot_id|>', '<|im_end|>', '<|end|>', '<|return|>', '<|call|>', '<|flush|>', '<|calls|>', '<end_of_turn>',
  '<|endoftext|>', '</s>', '<|eom_id|>', '<EOT>', '_<EOT>', '[EOT]', '[EOS]', '<|end_of_text|>',
  '<end_of_utterance>', '<eos>', '<turn|>', '<|tool_response>', '<｜end▁of▁sentence｜>', '[e~[',
]);
const EOT_TEXTS = new Set([
  '<|eot_id|>', '<|im_end|>', '<|end|>', '<end_of_turn>', '<|endoftext|>', '<|end_of_text|>', '<EOT>', '_<EOT>',
  '[EOT]', '<｜end▁of▁sentence｜>', '<end_of_utterance>',
]);
// Fill-in-the-middle pad / repo / file-separator tokens also end generation in llama.cpp.
const FIM_EOG_TEXTS = new Set([
  '<|fim_pad|>', '<fim-pad>', '<fim_pad>', '<PAD>', '[PAD]',
  '<|fim_repo|>', '<|repo_name|>', '<fim-repo>', '<REPO>', '<reponame>',
  '<|file_sep|>',
]);
// gpt-oss renders these even though they are control tokens.
const FORCED_USER_DEFINED = new Set(['<|channel|>', '<|message|>', '<|start|>', '<|constrain|>']);

/** The token table plus the derived attributes, lookups and special-token lists. */
export class Vocab {
  readonly kind: TokenizerKind;
  readonly texts: readonly string[];
  readonly scores: Float32Array;
  readonly types: Int32Array;
  /** llama.cpp attribute bits per token (token-types.ts). */
  readonly attrs: Uint8Array;
  private readonly ids = new Map<string, number>();
  /** Tokens matched in raw text before tokenizing (control, user-defined, unknown), longest first. */
  readonly specials: readonly number[];
  readonly eogIds: ReadonlySet<number>;
  readonly config: VocabConfig;

  constructor(config: VocabConfig) {
    this.config = config;
    this.kind = config.kind;
    const n = config.tokens.length;
    if (n === 0) throw new Error('tokenizer: the vocabulary is empty');
    if (config.scores && config.scores.length < n) throw new Error(`tokenizer: ${config.scores.length} scores for ${n} tokens`);
    if (config.tokenTypes && config.tokenTypes.length < n) {
      throw new Error(`tokenizer: ${config.tokenTypes.length} token types for ${n} tokens`);
    }
    // llama.cpp renames empty pieces so they stay unique and never match text.
    this.texts = config.tokens.map((t, i) => (t === '' ? `[EMPTY_${i}]` : t));
    this.scores = new Float32Array(n);
    this.types = new Int32Array(n);
    this.attrs = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const text = this.texts[i]!;
      const prev = this.ids.get(text);
      if (prev !== undefined) {
        throw new Error(`tokenizer: duplicate piece ${JSON.stringify(text)} at ids ${prev} and ${i} (llama.cpp rejects such vocabularies)`);
      }
      this.ids.set(text, i);
      this.scores[i] = config.scores ? config.scores[i]! : 0;
      this.types[i] = config.tokenTypes ? config.tokenTypes[i]! : TokenType.NORMAL;
      this.attrs[i] = config.tokenTypes ? attrFromType(this.types[i]!) : ATTR_NORMAL;
    }
    for (const [name, id] of [['bos', config.bosId], ['eos', config.eosId], ['unk', config.unkId]] as const) {
      if (id !== null && (id < 0 || id >= n)) throw new Error(`tokenizer: ${name} id ${id} outside the vocabulary of ${n}`);
    }
    this.eogIds = this.findEog();
    this.specials = this.findSpecials();
  }

  get size(): number {
    return this.texts.length;
  }

  /** Id of an exact piece, or undefined. */
  idOf(text: string): number | undefined {
    return this.ids.get(text);
  }

  private findEog(): Set<number> {
    const eog = new Set<number>();
    let eot = this.config.eotId;
    for (const [text, id] of this.ids) {
      if (eot === null && EOT_TEXTS.has(text)) eot = id;
      if (EOG_TEXTS.has(text) || FIM_EOG_TEXTS.has(text)) {
        eog.add(id);
        // llama.cpp promotes such tokens to control so they are hidden when decoding.
        this.attrs[id] = this.attrs[id]! | ATTR_CONTROL;
      }
    }
    if (eot !== null) {
      this.attrs[eot] = this.attrs[eot]! | ATTR_CONTROL;
      eog.add(eot);
    }
    if (this.config.eosId !== null) eog.add(this.config.eosId);
    if (this.config.eomId !== null) eog.add(this.config.eomId);
    const eom = this.ids.get('<|eom_id|>');
    if (eom !== undefined) eog.add(eom);
    for (const text of FORCED_USER_DEFINED) {
      const id = this.ids.get(text);
      if (id !== undefined) this.attrs[id] = ATTR_USER_DEFINED;
    }
    // gpt-oss / solar-open: "<|end|>" ends a message, not the generation, when the finer-grained tokens exist.
    const has = (t: string): boolean => [...eog].some((id) => this.texts[id] === t);
    const end = this.ids.get('<|end|>');
    if (end !== undefined && eog.has(end)) {
      if ((has('<|return|>') && (has('<|call|>') || has('<|calls|>'))) || ((has('<|call|>') || has('<|calls|>')) && has('<|flush|>'))) {
        eog.delete(end);
        this.attrs[end] = ATTR_USER_DEFINED;
      }
    }
    // gemma4 / paddleocr: "</s>" is ordinary text there.
    const s = this.ids.get('</s>');
    if (s !== undefined && eog.has(s) && has('<|tool_response>')) {
      eog.delete(s);
      this.attrs[s] = ATTR_NORMAL;
    }
    return eog;
  }

  private findSpecials(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.attrs.length; i++) {
      if (this.attrs[i]! & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN)) out.push(i);
    }
    // Longest (in UTF-8 bytes, as llama.cpp measures) first, so a special token is never cut by a shorter one
    // inside it; ties by id for determinism.
    const len = (id: number): number => utf8(this.texts[id]!).length;
    out.sort((a, b) => len(b) - len(a) || a - b);
    return out;
  }

  /** SentencePiece byte-fallback token for a byte: "<0xXX>", else the byte itself as a piece. */
  spmByteToken(b: number): number {
    const id = this.ids.get(bytePieceText(b)) ?? (b < 0x80 ? this.ids.get(String.fromCharCode(b)) : undefined);
    if (id === undefined) {
      throw new Error(`tokenizer: no byte-fallback token for byte 0x${b.toString(16).padStart(2, '0')} (need ${bytePieceText(b)})`);
    }
    return id;
  }
}
