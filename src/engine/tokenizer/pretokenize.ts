import { CP_LETTER, CP_NUMBER, CP_WHITESPACE, cpFlags } from './unicode.js';

/**
 * Byte-level BPE pre-tokenizers: split text into words before merging, exactly as llama.cpp's hand-written
 * matchers do (unicode.cpp). Those matchers differ from a textbook regex engine in corner cases (for example
 * `\s+(?!\S)` keeps a run of one whitespace before a letter whole only at the end of text), and token ids depend
 * on the split, so we follow the matchers, not the regexes they are named after.
 */

export type PreTokenizerName = 'gpt2' | 'llama3';

/** tokenizer.ggml.pre values we support, mapped to the splitter llama.cpp uses for them. */
export const SUPPORTED_PRE: Readonly<Record<string, PreTokenizerName>> = {
  'gpt-2': 'gpt2',
  llama3: 'llama3',
  'llama-v3': 'llama3',
  'llama-bpe': 'llama3',
};

const IN_RANGE = 0x100;
const OUT_OF_RANGE = -1;
const APOS = 0x27;
const SPACE = 0x20;
const CR = 0x0d;
const LF = 0x0a;

/** Shared cursor over one text: code points, their flags, and the words cut so far. */
class Splitter {
  readonly cps: number[] = [];
  private readonly offs: number[] = [];
  readonly words: string[] = [];
  private prevEnd = 0;

  constructor(private readonly text: string) {
    for (let i = 0; i < text.length; ) {
      const cp = text.codePointAt(i)!;
      this.cps.push(cp);
      this.offs.push(i);
      i += cp > 0xffff ? 2 : 1;
    }
    this.offs.push(text.length);
  }

  get n(): number {
    return this.cps.length;
  }

  cp(pos: number): number {
    return pos < this.cps.length ? this.cps[pos]! : OUT_OF_RANGE;
  }

  /** Flags of the code point at pos, with IN_RANGE set; 0 past the end (like llama.cpp's empty flags). */
  flags(pos: number): number {
    return pos < this.cps.length ? cpFlags(this.cps[pos]!) | IN_RANGE : 0;
  }

  /** Ends the current word at `end`; returns its length in code points. */
  cut(end: number): number {
    const len = end - this.prevEnd;
    if (len > 0) this.words.push(this.text.slice(this.offs[this.prevEnd]!, this.offs[end]!));
    this.prevEnd = end;
    return len;
  }
}

const isLetter = (f: number): boolean => (f & CP_LETTER) !== 0;
const isNumber = (f: number): boolean => (f & CP_NUMBER) !== 0;
const isSpace = (f: number): boolean => (f & CP_WHITESPACE) !== 0;
const isOther = (f: number): boolean => (f & (CP_LETTER | CP_NUMBER | CP_WHITESPACE)) === 0 && (f & IN_RANGE) !== 0;
const lowerAscii = (cp: number): number => (cp >= 0x41 && cp <= 0x5a ? cp + 32 : cp);

/** Length of an English contraction ('s 't 'm 'd 2, 're 've 'll 3) starting at pos, or 0. */
function contraction(s: Splitter, pos: number, caseInsensitive: boolean): number {
  if (s.cp(pos) !== APOS || pos + 1 >= s.n) return 0;
  const low = caseInsensitive ? lowerAscii : (c: number): number => c;
  const c1 = low(s.cp(pos + 1));
  if (c1 === 0x73 || c1 === 0x74 || c1 === 0x6d || c1 === 0x64) return 2; // s t m d
  if (pos + 2 < s.n) {
    const c2 = low(s.cp(pos + 2));
    if ((c1 === 0x72 && c2 === 0x65) || (c1 === 0x76 && c2 === 0x65) || (c1 === 0x6c && c2 === 0x6c)) return 3; // re ve ll
  }
  return 0;
}

/** Trailing whitespace rules shared by both splitters: `\s+(?!\S)` then `\s+`, then a lone character. */
function whitespaceOrSingle(s: Splitter, pos: number, nws: number): number {
  if (nws > 1 && s.cp(pos + nws) !== OUT_OF_RANGE) {
    pos += nws - 1;
  } else if (nws > 0) {
    pos += nws;
  } else {
    pos += 1;
  }
  s.cut(pos);
  return pos;
}

/** GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
function splitGpt2(s: Splitter): void {
  for (let pos = 0; pos < s.n; ) {
    const cpt = s.cp(pos);
    const c = contraction(s, pos, false);
    if (c > 0) {
      pos += s.cut(pos + c);
      continue;
    }
    let f2 = cpt === SPACE ? s.flags(pos + 1) : s.flags(pos);
    const cls = isLetter(f2) ? isLetter : isNumber(f2) ? isNumber : isOther(f2) ? isOther : null;
    if (cls) {
      if (cpt === SPACE) pos++;
      while (cls(f2)) f2 = s.flags(++pos);
      s.cut(pos);
      continue;
    }
    let nws = 0;
    while (isSpace(s.flags(pos + nws))) nws++;
    pos = whitespaceOrSingle(s, pos, nws);
  }
}

/**
 * Llama 3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|
 * \s+(?!\S)|\s+
 */
function splitLlama3(s: Splitter): void {
  for (let pos = 0; pos < s.n; ) {
    const cpt = s.cp(pos);
    const flags = s.flags(pos);
    const c = contraction(s, pos, true);
    if (c > 0) {
      pos += s.cut(pos + c);
      continue;
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+ : any one non-newline, non-digit character may lead a run of letters.
    if (!(cpt === CR || cpt === LF || isNumber(flags)) && (isLetter(flags) || isLetter(s.flags(pos + 1)))) {
      pos++;
      while (isLetter(s.flags(pos))) pos++;
      s.cut(pos);
      continue;
    }
    // \p{N}{1,3}
    if (isNumber(flags)) {
      let ini = pos;
      while (isNumber(s.flags(pos))) {
        if (++pos - ini >= 3) {
          s.cut(pos);
          ini = pos;
        }
      }
      s.cut(pos);
      continue;
    }
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*' — llama.cpp tests the range of the *first* character here, not the next one.
    let f2 = cpt === SPACE ? s.flags(pos + 1) : flags;
    if ((f2 & (CP_LETTER | CP_NUMBER | CP_WHITESPACE)) === 0 && (flags & IN_RANGE) !== 0) {
      if (cpt === SPACE) pos++;
      while (isOther(f2)) f2 = s.flags(++pos);
      while (s.cp(pos) === CR || s.cp(pos) === LF) pos++;
      s.cut(pos);
      continue;
    }
    let nws = 0;
    let lastNewlineEnd = 0;
    while (isSpace(s.flags(pos + nws))) {
      const c2 = s.cp(pos + nws);
      if (c2 === CR || c2 === LF) lastNewlineEnd = pos + nws + 1;
      nws++;
    }
    // \s*[\r\n]+
    if (lastNewlineEnd > 0) {
      pos = lastNewlineEnd;
      s.cut(pos);
      continue;
    }
    pos = whitespaceOrSingle(s, pos, nws);
  }
}

/** Splits text into pre-tokenizer words (not yet byte-encoded). */
export function preTokenize(name: PreTokenizerName, text: string): string[] {
  const s = new Splitter(text);
  if (name === 'gpt2') splitGpt2(s);
  else splitLlama3(s);
  return s.words;
}
