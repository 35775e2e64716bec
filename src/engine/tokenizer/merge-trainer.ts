import { BinaryHeap } from './heap.js';

/** A learned merge: `left + right` became a new symbol. */
export interface LearnedMerge {
  readonly left: string;
  readonly right: string;
}

interface PairEntry {
  readonly key: string;
  readonly count: number;
}

const SEP = '\u0001';
// Most frequent pair first; ties by key so the result does not depend on insertion order.
const before = (a: PairEntry, b: PairEntry): boolean => a.count > b.count || (a.count === b.count && a.key < b.key);

/**
 * Classic BPE training on weighted words (each word given as its initial symbols). Pairs with a symbol outside
 * `known` are never merged, which lets a small alphabet treat other characters as barriers. Stops after
 * `maxMerges` merges or when no pair occurs twice. Deterministic for a given input.
 */
export function trainMerges(
  words: ReadonlyArray<{ readonly symbols: readonly string[]; readonly count: number }>,
  known: ReadonlySet<string>,
  maxMerges: number,
  maxPieceLength: number,
): LearnedMerge[] {
  const syms = words.map((w) => [...w.symbols]);
  const counts = words.map((w) => w.count);
  const pairCount = new Map<string, number>();
  const pairWords = new Map<string, Set<number>>();
  const heap = new BinaryHeap<PairEntry>(before);
  const merged = new Set<string>(known);

  const pairsOf = (w: number, fn: (key: string) => void): void => {
    const s = syms[w]!;
    for (let i = 0; i + 1 < s.length; i++) {
      if (merged.has(s[i]!) && merged.has(s[i + 1]!)) fn(s[i]! + SEP + s[i + 1]!);
    }
  };
  const add = (w: number, sign: 1 | -1): void => {
    pairsOf(w, (key) => {
      const c = (pairCount.get(key) ?? 0) + sign * counts[w]!;
      pairCount.set(key, c);
      if (sign > 0) {
        let set = pairWords.get(key);
        if (!set) pairWords.set(key, (set = new Set()));
        set.add(w);
      }
    });
  };
  for (let w = 0; w < syms.length; w++) add(w, 1);
  for (const [key, count] of pairCount) heap.push({ key, count });

  const out: LearnedMerge[] = [];
  while (out.length < maxMerges) {
    const top = heap.pop();
    if (!top || top.count < 2) break;
    if (pairCount.get(top.key) !== top.count) continue; // stale entry
    const [left, right] = top.key.split(SEP) as [string, string];
    const joined = left + right;
    if ([...joined].length > maxPieceLength) {
      pairCount.set(top.key, -1); // never again
      continue;
    }
    out.push({ left, right });
    merged.add(joined);
    const touched = new Set<string>();
    for (const w of pairWords.get(top.key) ?? []) {
      pairsOf(w, (k) => touched.add(k));
      add(w, -1);
      const s = syms[w]!;
      const next: string[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === left && s[i + 1] === right) {
          next.push(joined);
          i++;
        } else {
          next.push(s[i]!);
        }
      }
      syms[w] = next;
      add(w, 1);
      pairsOf(w, (k) => touched.add(k));
    }
    for (const k of touched) {
      const c = pairCount.get(k)!;
      if (c >= 2) heap.push({ key: k, count: c });
    }
  }
  return out;
}
