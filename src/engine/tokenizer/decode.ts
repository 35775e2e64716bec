import { ATTR_BYTE, ATTR_CONTROL, ATTR_NORMAL, ATTR_UNKNOWN, ATTR_USER_DEFINED } from './token-types.js';
import { parseBytePiece, unicodeToByte, utf8 } from './unicode.js';
import type { Vocab } from './vocab.js';

const EMPTY = new Uint8Array(0);

/**
 * The bytes a token stands for in output text, following llama.cpp's token_to_piece without special rendering:
 * control and unknown tokens render as nothing, user-defined tokens as their text, byte tokens as their byte;
 * normal SentencePiece pieces turn "▁" back into spaces, normal byte-level BPE pieces map each character back to
 * its byte. Unused/undefined tokens render as nothing, as in llama.cpp.
 */
export function tokenBytes(vocab: Vocab, id: number): Uint8Array {
  const attr = vocab.attrs[id]!;
  const text = vocab.texts[id]!;
  if (attr & (ATTR_CONTROL | ATTR_UNKNOWN)) return EMPTY;
  if (attr & ATTR_USER_DEFINED) return utf8(text);
  if (attr & ATTR_NORMAL) {
    if (vocab.kind === 'llama') return utf8(text.replaceAll('\u2581', ' '));
    const out: number[] = [];
    for (const ch of text) {
      const b = unicodeToByte(ch.codePointAt(0)!);
      // llama.cpp emits an "[UNK_BYTE_…]" marker here; the character's own UTF-8 is the more useful fallback.
      if (b >= 0) out.push(b);
      else out.push(...utf8(ch));
    }
    return Uint8Array.from(out);
  }
  if (attr & ATTR_BYTE) {
    const b = parseBytePiece(text);
    return b >= 0 ? Uint8Array.of(b) : EMPTY;
  }
  return EMPTY;
}

/** True for the tokens after which the SentencePiece encoder inserts a prefix space into the following text. */
export function startsNewText(vocab: Vocab, id: number): boolean {
  return (vocab.attrs[id]! & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN)) !== 0;
}

/**
 * Turns a token stream into text without ever splitting a UTF-8 character: bytes of an incomplete character
 * wait for the next push. With `stripPrefixSpace`, the space the encoder prepends at the start of text (and
 * after each special token) is removed, so decoding what we encoded gives the input back.
 */
export class Utf8StreamDecoder {
  private readonly decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
  private strip: boolean;

  constructor(
    private readonly vocab: Vocab,
    private readonly stripPrefixSpace: boolean,
  ) {
    this.strip = stripPrefixSpace;
  }

  push(id: number): string {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocab.size) throw new RangeError(`tokenizer: token id ${id} out of range`);
    let bytes = tokenBytes(this.vocab, id);
    if (this.stripPrefixSpace) {
      if (startsNewText(this.vocab, id)) {
        this.strip = true;
      } else {
        if (this.strip && bytes[0] === 0x20) bytes = bytes.subarray(1);
        this.strip = false;
      }
    }
    return bytes.length > 0 ? this.decoder.decode(bytes, { stream: true }) : '';
  }

  /** Ends the stream: any incomplete character becomes U+FFFD. */
  flush(): string {
    return this.decoder.decode();
  }
}
