import type { TokenType } from './token-types.js';

export interface EncodeOptions {
  /** Prepend BOS; default: the model's add_bos_token. */
  readonly addBos?: boolean;
  /** Recognise control tokens written in the text (e.g. "<s>"); user-defined tokens are always recognised. */
  readonly parseSpecial?: boolean;
}

export interface StreamDecoderOptions {
  /**
   * The ids start a text (as from encode): drop the space SentencePiece prepends. Default false — a generated
   * continuation keeps its leading space ("▁world" after a prompt is " world").
   */
  readonly atTextStart?: boolean;
}

export interface StreamDecoder {
  /** Text completed by this token; an incomplete UTF-8 character is held back until it completes. */
  push(id: number): string;
  /** Remaining held-back bytes (as U+FFFD if they never completed a character). */
  flush(): string;
}

export interface Tokenizer {
  readonly kind: 'llama' | 'gpt2';
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  /** Every end-of-generation token (EOS, EOT, EOM and the like), as llama.cpp's EOG set. */
  readonly eotIds: ReadonlySet<number>;
  /** tokenizer.ggml.add_bos_token, or llama.cpp's default for the model type. */
  readonly addBos: boolean;
  /** Ids equal llama.cpp's llama_tokenize(text, add_special = addBos, parse_special). */
  encode(text: string, opts?: EncodeOptions): number[];
  /** The raw piece as stored in the vocabulary (e.g. "▁the", "<0x0A>", "Ġthe"). */
  piece(id: number): string;
  /** Bytes the token contributes to output text (empty for control tokens). */
  tokenBytes(id: number): Uint8Array;
  tokenType(id: number): TokenType;
  /** Text of a token sequence; lossless for text we encoded (control tokens render as nothing). */
  decode(ids: readonly number[]): string;
  newStreamDecoder(opts?: StreamDecoderOptions): StreamDecoder;
  isEog(id: number): boolean;
}
