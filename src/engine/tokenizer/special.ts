import { ATTR_CONTROL, ATTR_UNKNOWN } from './token-types.js';
import type { Vocab } from './vocab.js';

/** A piece of input: raw text still to tokenize, or a special token already recognised. */
export type Fragment = { readonly text: string } | { readonly token: number };

/**
 * Splits text at occurrences of special tokens, as llama.cpp's tokenizer_st_partition does: each special token
 * in turn (longest first) cuts every remaining text fragment at all its occurrences. User-defined tokens are
 * always recognised; control and unknown tokens only when `parseSpecial` is set.
 */
export function partitionSpecial(vocab: Vocab, text: string, parseSpecial: boolean): Fragment[] {
  let frags: Fragment[] = text.length > 0 ? [{ text }] : [];
  for (const id of vocab.specials) {
    if (!parseSpecial && vocab.attrs[id]! & (ATTR_CONTROL | ATTR_UNKNOWN)) continue;
    const needle = vocab.texts[id]!;
    if (!frags.some((f) => 'text' in f && f.text.includes(needle))) continue;
    const next: Fragment[] = [];
    for (const f of frags) {
      if (!('text' in f)) {
        next.push(f);
        continue;
      }
      let from = 0;
      for (let at = f.text.indexOf(needle); at >= 0; at = f.text.indexOf(needle, from)) {
        if (at > from) next.push({ text: f.text.slice(from, at) });
        next.push({ token: id });
        from = at + needle.length;
      }
      if (from < f.text.length) next.push({ text: f.text.slice(from) });
    }
    frags = next;
  }
  return frags;
}
