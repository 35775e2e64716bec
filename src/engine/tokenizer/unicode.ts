/**
 * Unicode helpers shared by the tokenizers: code point classes as llama.cpp's pre-tokenizers see them, UTF-8
 * conversion, and GPT-2's byte ↔ printable-character map.
 */

export const CP_LETTER = 1;
export const CP_NUMBER = 2;
export const CP_WHITESPACE = 4;
const CP_KNOWN = 0x80;

const LETTER_RE = /^\p{L}$/u;
const NUMBER_RE = /^\p{N}$/u;

/**
 * llama.cpp's whitespace set is Unicode's White_Space property. It differs from JS `\s`, which lacks U+0085 and
 * adds U+FEFF, so we list it explicitly.
 */
function isWhiteSpace(cp: number): boolean {
  return (
    (cp >= 0x09 && cp <= 0x0d) ||
    cp === 0x20 ||
    cp === 0x85 ||
    cp === 0xa0 ||
    cp === 0x1680 ||
    (cp >= 0x2000 && cp <= 0x200a) ||
    cp === 0x2028 ||
    cp === 0x2029 ||
    cp === 0x202f ||
    cp === 0x205f ||
    cp === 0x3000
  );
}

// Lazily filled per-code-point cache: regex tests are slow, and texts reuse few distinct code points.
const flagCache = new Uint8Array(0x110000);

/** Bit set of CP_LETTER / CP_NUMBER / CP_WHITESPACE for a code point (General Category from the JS engine). */
export function cpFlags(cp: number): number {
  if (cp < 0 || cp >= 0x110000) return 0;
  const cached = flagCache[cp]!;
  if (cached !== 0) return cached & ~CP_KNOWN;
  const ch = String.fromCodePoint(cp);
  let f = 0;
  if (LETTER_RE.test(ch)) f |= CP_LETTER;
  if (NUMBER_RE.test(ch)) f |= CP_NUMBER;
  if (isWhiteSpace(cp)) f |= CP_WHITESPACE;
  flagCache[cp] = f | CP_KNOWN;
  return f;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * Replaces lone surrogates by U+FFFD. Text reaches llama.cpp as UTF-8, where a lone surrogate cannot exist
 * (Node's encoders substitute U+FFFD), so we tokenize the same well-formed string.
 */
export function wellFormed(s: string): string {
  return s.replace(LONE_SURROGATE, '\uFFFD');
}

/** Code points of a well-formed string. */
export function codePoints(s: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < s.length; ) {
    const cp = s.codePointAt(i)!;
    out.push(cp);
    i += cp > 0xffff ? 2 : 1;
  }
  return out;
}

const encoder = new TextEncoder();
export function utf8(s: string): Uint8Array {
  return encoder.encode(s);
}

const HEX = '0123456789ABCDEF';
/** The SentencePiece byte-fallback piece for a byte, e.g. 0x0A → "<0x0A>". */
export function bytePieceText(b: number): string {
  return `<0x${HEX[b >> 4]}${HEX[b & 15]}>`;
}

/** Parses "<0xXX>" → byte, or -1. */
export function parseBytePiece(text: string): number {
  if (text.length !== 6 || !text.startsWith('<0x') || text[5] !== '>') return -1;
  const v = parseInt(text.slice(3, 5), 16);
  return Number.isNaN(v) ? -1 : v;
}

/**
 * GPT-2's reversible byte → character map: printable Latin-1 bytes stand for themselves, the other 68 bytes are
 * shifted to U+0100.. in byte order, so every byte string becomes a string of visible characters.
 */
function buildByteMaps(): { toChar: string[]; toByte: Map<number, number> } {
  const toChar: string[] = new Array<string>(256);
  const toByte = new Map<number, number>();
  const printable = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const cp = printable(b) ? b : 256 + n++;
    toChar[b] = String.fromCodePoint(cp);
    toByte.set(cp, b);
  }
  return { toChar, toByte };
}

const BYTE_MAPS = buildByteMaps();

/** The character GPT-2's byte-level BPE uses for byte b. */
export function byteToUnicode(b: number): string {
  return BYTE_MAPS.toChar[b]!;
}

/** The byte a GPT-2 byte-level character stands for, or -1 if the code point is not one of the 256. */
export function unicodeToByte(cp: number): number {
  return BYTE_MAPS.toByte.get(cp) ?? -1;
}

/** UTF-8 bytes of `s`, each replaced by its GPT-2 byte-level character. */
export function byteEncode(s: string): string {
  const bytes = utf8(s);
  let out = '';
  for (const b of bytes) out += BYTE_MAPS.toChar[b]!;
  return out;
}
