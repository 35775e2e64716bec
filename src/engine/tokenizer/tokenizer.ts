import { BpeModel } from './bpe.js';
import { tokenBytes, Utf8StreamDecoder } from './decode.js';
import { partitionSpecial } from './special.js';
import { spmTokenize } from './spm.js';
import type { TokenType } from './token-types.js';
import type { EncodeOptions, StreamDecoder, StreamDecoderOptions, Tokenizer } from './types.js';
import { wellFormed } from './unicode.js';
import { Vocab, type VocabConfig } from './vocab.js';

/** A Tokenizer over a vocabulary: SentencePiece ("llama") or byte-level BPE ("gpt2"). */
export class VocabTokenizer implements Tokenizer {
  readonly kind: 'llama' | 'gpt2';
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly eotIds: ReadonlySet<number>;
  readonly addBos: boolean;
  private readonly vocab: Vocab;
  private readonly bpe: BpeModel | null;
  /** Whether encode prepends "▁" to each text fragment (SentencePiece add_space_prefix). */
  private readonly spacePrefix: boolean;

  constructor(config: VocabConfig) {
    this.vocab = new Vocab(config);
    this.kind = config.kind;
    this.vocabSize = this.vocab.size;
    this.bosId = config.bosId;
    this.eosId = config.eosId;
    this.eotIds = this.vocab.eogIds;
    this.addBos = config.addBos;
    this.spacePrefix = config.kind === 'llama' && config.addSpacePrefix;
    if (config.kind === 'gpt2') {
      if (!config.merges) throw new Error('tokenizer: a gpt2 vocabulary needs tokenizer.ggml.merges');
      this.bpe = new BpeModel(this.vocab, config.merges, config.pre ?? 'default');
    } else {
      this.bpe = null;
    }
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if (opts.addBos ?? this.addBos) {
      if (this.bosId === null) throw new Error('tokenizer: BOS requested but the vocabulary has no BOS token');
      out.push(this.bosId);
    }
    const frags = partitionSpecial(this.vocab, wellFormed(text), opts.parseSpecial ?? false);
    // SentencePiece prefixes a space to the text at the start and after every special token.
    let afterSpecial = true;
    for (const f of frags) {
      if ('token' in f) {
        out.push(f.token);
        afterSpecial = true;
        continue;
      }
      if (this.bpe) {
        this.bpe.tokenize(f.text, out);
      } else {
        const t = this.spacePrefix && afterSpecial ? ` ${f.text}` : f.text;
        spmTokenize(this.vocab, t.replaceAll(' ', '\u2581'), out);
      }
      afterSpecial = false;
    }
    return out;
  }

  piece(id: number): string {
    return this.vocab.texts[this.checkId(id)]!;
  }

  tokenBytes(id: number): Uint8Array {
    return tokenBytes(this.vocab, this.checkId(id));
  }

  tokenType(id: number): TokenType {
    return this.vocab.types[this.checkId(id)]! as TokenType;
  }

  decode(ids: readonly number[]): string {
    const d = this.newStreamDecoder({ atTextStart: true });
    let s = '';
    for (const id of ids) s += d.push(id);
    return s + d.flush();
  }

  newStreamDecoder(opts: StreamDecoderOptions = {}): StreamDecoder {
    return new Utf8StreamDecoder(this.vocab, this.spacePrefix && (opts.atTextStart ?? false));
  }

  isEog(id: number): boolean {
    return this.eotIds.has(id);
  }

  private checkId(id: number): number {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new RangeError(`tokenizer: token id ${id} out of range`);
    return id;
  }
}
