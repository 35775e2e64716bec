/**
 * Tokenizers built from GGUF metadata, producing the same ids as llama.cpp: SentencePiece ("llama") and
 * byte-level BPE ("gpt2" with the GPT-2 or Llama 3 pre-tokenizer). Also synthetic vocabularies for
 * synthesized test models.
 */
import type { SyntheticVocab } from './synthetic.js';
import { vocabMetadata } from './synthetic.js';
import { metadataSource } from './meta-source.js';
import { tokenizerFromGguf } from './from-gguf.js';
import type { Tokenizer } from './types.js';

export type { Tokenizer, StreamDecoder, EncodeOptions, StreamDecoderOptions } from './types.js';
export { TokenType } from './token-types.js';
export { tokenizerFromGguf, vocabConfigFromGguf, type GgufMetadataSource } from './from-gguf.js';
export { metadataSource } from './meta-source.js';
export {
  syntheticSpmVocab,
  syntheticBpeVocab,
  vocabMetadata,
  type SyntheticVocab,
  type SyntheticVocabOptions,
  type SyntheticBpeOptions,
} from './synthetic.js';
export { SUPPORTED_PRE } from './pretokenize.js';

/** The tokenizer a synthetic vocabulary yields once written to GGUF (built without the file round trip). */
export function tokenizerFromVocab(v: SyntheticVocab): Tokenizer {
  return tokenizerFromGguf(metadataSource(vocabMetadata(v)));
}
