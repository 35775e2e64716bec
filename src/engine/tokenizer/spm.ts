import { BinaryHeap } from './heap.js';
import { utf8 } from './unicode.js';
import type { Vocab } from './vocab.js';

interface Bigram {
  readonly left: number;
  readonly right: number;
  readonly score: number;
  /** Combined length (UTF-16 units) when queued; a mismatch later means a side has merged since. */
  readonly size: number;
}

// Highest score first; equal scores merge leftmost first (llama.cpp's llm_bigram_spm comparator).
const before = (a: Bigram, b: Bigram): boolean => a.score > b.score || (a.score === b.score && a.left < b.left);

/**
 * SentencePiece-style tokenization of one text fragment (spaces already replaced by "▁"), as llama.cpp's
 * llm_tokenizer_spm_session does: start from single code points, repeatedly merge the adjacent pair whose
 * concatenation is the highest-scoring piece in the vocabulary, then emit each remaining symbol as its piece or,
 * if it is not a piece, as byte-fallback tokens.
 *
 * llama.cpp also keeps a "rev_merge" table to re-split symbols that are not pieces, but it only records pairs
 * whose concatenation *is* a piece, so every merged symbol is a piece and only unmerged single code points can
 * miss the vocabulary; those go straight to bytes here.
 */
export function spmTokenize(vocab: Vocab, text: string, out: number[]): void {
  const starts: number[] = [];
  const lens: number[] = [];
  for (let i = 0; i < text.length; ) {
    const n = text.codePointAt(i)! > 0xffff ? 2 : 1;
    starts.push(i);
    lens.push(n);
    i += n;
  }
  const count = starts.length;
  if (count === 0) return;
  const prev = new Int32Array(count);
  const next = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    prev[i] = i - 1;
    next[i] = i + 1 < count ? i + 1 : -1;
  }

  const queue = new BinaryHeap<Bigram>(before);
  const tryAdd = (left: number, right: number): void => {
    if (left < 0 || right < 0) return;
    const size = lens[left]! + lens[right]!;
    const id = vocab.idOf(text.substr(starts[left]!, size));
    if (id === undefined) return;
    queue.push({ left, right, score: vocab.scores[id]!, size });
  };
  for (let i = 1; i < count; i++) tryAdd(i - 1, i);

  for (let bg = queue.pop(); bg !== undefined; bg = queue.pop()) {
    const { left, right } = bg;
    // Symbols only grow or vanish, so an unchanged total length means both sides are as they were queued.
    if (lens[left] === 0 || lens[right] === 0 || lens[left]! + lens[right]! !== bg.size) continue;
    lens[left] = bg.size;
    lens[right] = 0;
    next[left] = next[right]!;
    if (next[right]! >= 0) prev[next[right]!] = left;
    tryAdd(prev[left]!, left);
    tryAdd(left, next[left]!);
  }

  for (let i = 0; i !== -1; i = next[i]!) {
    const piece = text.substr(starts[i]!, lens[i]!);
    const id = vocab.idOf(piece);
    if (id !== undefined) {
      out.push(id);
    } else {
      for (const b of utf8(piece)) out.push(vocab.spmByteToken(b));
    }
  }
}
