import { BinaryHeap } from './heap.js';
import { preTokenize, SUPPORTED_PRE, type PreTokenizerName } from './pretokenize.js';
import { byteEncode, utf8 } from './unicode.js';
import type { Vocab } from './vocab.js';

interface Bigram {
  readonly left: number;
  readonly right: number;
  readonly rank: number;
  readonly text: string;
}

// Lowest merge rank first; equal ranks leftmost first (llama.cpp's llm_bigram_bpe comparator).
const before = (a: Bigram, b: Bigram): boolean => a.rank < b.rank || (a.rank === b.rank && a.left < b.left);

/** Key of a merge pair that cannot collide whatever characters the halves hold. */
const pairKey = (a: string, b: string): string => `${a.length}:${a}${b}`;

/** GPT-2 style byte-level BPE, as llama.cpp's llm_tokenizer_bpe_session runs it. */
export class BpeModel {
  private readonly ranks = new Map<string, number>();
  readonly pre: PreTokenizerName;
  /** Llama 3 looks a whole pre-token word up before merging (llama.cpp's ignore_merges). */
  readonly ignoreMerges: boolean;

  constructor(
    private readonly vocab: Vocab,
    merges: readonly string[],
    preName: string,
  ) {
    const pre = SUPPORTED_PRE[preName];
    if (!pre) {
      throw new Error(
        `tokenizer: unsupported pre-tokenizer '${preName}' (tokenizer.ggml.pre); supported: ${Object.keys(SUPPORTED_PRE).join(', ')}`,
      );
    }
    this.pre = pre;
    this.ignoreMerges = pre === 'llama3';
    merges.forEach((m, rank) => {
      // Split at the first space after the first character (a merge half may itself start with a space);
      // a merge without a separator becomes the empty pair, and the first rank of a repeated pair wins.
      const at = m.indexOf(' ', 1);
      const key = at >= 0 ? pairKey(m.slice(0, at), m.slice(at + 1)) : pairKey('', '');
      if (!this.ranks.has(key)) this.ranks.set(key, rank);
    });
  }

  /** Tokenizes one text fragment (no special tokens inside). */
  tokenize(text: string, out: number[]): void {
    for (const word of preTokenize(this.pre, text)) this.tokenizeWord(byteEncode(word), out);
  }

  private tokenizeWord(word: string, out: number[]): void {
    if (this.ignoreMerges) {
      const whole = this.vocab.idOf(word);
      if (whole !== undefined) {
        out.push(whole);
        return;
      }
    }
    const starts: number[] = [];
    const lens: number[] = [];
    for (let i = 0; i < word.length; ) {
      const n = word.codePointAt(i)! > 0xffff ? 2 : 1;
      starts.push(i);
      lens.push(n);
      i += n;
    }
    const count = starts.length;
    const prev = new Int32Array(count);
    const next = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < count ? i + 1 : -1;
    }
    const sym = (i: number): string => word.substr(starts[i]!, lens[i]!);

    const queue = new BinaryHeap<Bigram>(before);
    const tryAdd = (left: number, right: number): void => {
      if (left < 0 || right < 0) return;
      const a = sym(left);
      const b = sym(right);
      const rank = this.ranks.get(pairKey(a, b));
      if (rank !== undefined) queue.push({ left, right, rank, text: a + b });
    };
    for (let i = 1; i < count; i++) tryAdd(i - 1, i);

    for (let bg = queue.pop(); bg !== undefined; bg = queue.pop()) {
      const { left, right } = bg;
      if (lens[left] === 0 || lens[right] === 0) continue;
      if (sym(left) + sym(right) !== bg.text) continue; // outdated: a side merged since it was queued
      lens[left] = lens[left]! + lens[right]!;
      lens[right] = 0;
      next[left] = next[right]!;
      if (next[right]! >= 0) prev[next[right]!] = left;
      tryAdd(prev[left]!, left);
      tryAdd(left, next[left]!);
    }

    for (let i = 0; i < count; i = next[i]! < 0 ? count : next[i]!) {
      const piece = sym(i);
      const id = this.vocab.idOf(piece);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      // llama.cpp falls back to looking up each UTF-8 byte of the symbol as a one-byte piece; only ASCII bytes
      // can be such pieces, the others are dropped. Consistent vocabularies never get here.
      for (const b of utf8(piece)) {
        const bid = b < 0x80 ? this.vocab.idOf(String.fromCharCode(b)) : undefined;
        if (bid !== undefined) out.push(bid);
      }
    }
  }
}
