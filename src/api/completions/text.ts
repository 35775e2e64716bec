/**
 * Generated tokens → completion text, the same way for streamed and whole responses (so streamed chunks always
 * concatenate to the non-streamed text): a stream decoder that never splits a UTF-8 character, end-of-generation
 * tokens that render as nothing, stop sequences matched on the decoded text, and OpenAI-style logprobs.
 */
import type { TokenLogprob } from '../../engine/sampler.js';
import type { Tokenizer, StreamDecoder } from '../../engine/tokenizer/index.js';

/**
 * Finds the first stop sequence in text that arrives in pieces. Text that could still be the start of a stop
 * sequence is held back, so nothing of a stop sequence is ever released — even when it spans several tokens.
 */
export class StopMatcher {
  private held = '';

  constructor(private readonly stops: readonly string[]) {}

  /** Returns the text now safe to release; `stopped` when a stop sequence completed (its text is dropped). */
  push(text: string): { text: string; stopped: boolean } {
    const s = this.held + text;
    let at = -1;
    for (const stop of this.stops) {
      const i = s.indexOf(stop);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    if (at >= 0) {
      this.held = '';
      return { text: s.slice(0, at), stopped: true };
    }
    const keep = this.heldSuffixLength(s);
    this.held = s.slice(s.length - keep);
    return { text: s.slice(0, s.length - keep), stopped: false };
  }

  /** The held-back text, at the end of the completion (it never became a stop sequence). */
  flush(): string {
    const s = this.held;
    this.held = '';
    return s;
  }

  /** Length of the longest suffix of s that is a proper prefix of some stop sequence. */
  private heldSuffixLength(s: string): number {
    let best = 0;
    for (const stop of this.stops) {
      for (let n = Math.min(stop.length - 1, s.length); n > best; n--) {
        if (s.endsWith(stop.slice(0, n))) {
          best = n;
          break;
        }
      }
    }
    return best;
  }
}

/** OpenAI's legacy logprobs object (also used per chunk when streaming, with one entry). */
export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: Array<number | null>;
  top_logprobs: Array<Record<string, number>>;
  text_offset: number[];
}

export function emptyLogprobs(): CompletionLogprobs {
  return { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
}

export function appendLogprobs(into: CompletionLogprobs, from: CompletionLogprobs): void {
  into.tokens.push(...from.tokens);
  into.token_logprobs.push(...from.token_logprobs);
  into.top_logprobs.push(...from.top_logprobs);
  into.text_offset.push(...from.text_offset);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A token as OpenAI spells it in logprobs: its text; "bytes:\xNN" for a piece of a UTF-8 character (as OpenAI
 * does); the raw piece ("</s>") for control tokens, which render as no text but still need a distinct key.
 */
export function tokenLabel(tokenizer: Tokenizer, id: number): string {
  const bytes = tokenizer.tokenBytes(id);
  if (bytes.length === 0) return tokenizer.piece(id);
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return 'bytes:' + Array.from(bytes, (b) => `\\x${b.toString(16).padStart(2, '0')}`).join('');
  }
}

export interface TokenStep {
  /** Text released by this token (may be empty: an incomplete character or a possible stop sequence is held). */
  readonly text: string;
  /** This token's logprobs entry, when logprobs were asked for and the token is not end-of-generation. */
  readonly logprobs: CompletionLogprobs | null;
  readonly stopped: boolean;
}

function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

export class CompletionAssembler {
  private readonly decoder: StreamDecoder;
  private readonly matcher: StopMatcher;
  /** Code points decoded so far (before stop truncation): what text_offset counts, like Python's str indices. */
  private decodedChars = 0;
  private stoppedValue = false;

  constructor(
    private readonly tokenizer: Tokenizer,
    stops: readonly string[],
    private readonly topLogprobs: number | null,
  ) {
    this.decoder = tokenizer.newStreamDecoder();
    this.matcher = new StopMatcher(stops);
  }

  get stopped(): boolean {
    return this.stoppedValue;
  }

  push(token: number, alternatives: readonly TokenLogprob[] | null): TokenStep {
    if (this.stoppedValue) return { text: '', logprobs: null, stopped: true };
    if (this.tokenizer.isEog(token)) return { text: '', logprobs: null, stopped: false };
    const decoded = this.decoder.push(token);
    const logprobs = this.topLogprobs === null ? null : this.entry(token, alternatives ?? []);
    this.decodedChars += codePoints(decoded);
    const r = this.matcher.push(decoded);
    this.stoppedValue = r.stopped;
    return { text: r.text, logprobs, stopped: r.stopped };
  }

  /** The completion ended: release what was held back (an unfinished character becomes U+FFFD). */
  finish(): { text: string; stopped: boolean } {
    if (this.stoppedValue) return { text: '', stopped: true };
    const r = this.matcher.push(this.decoder.flush());
    this.stoppedValue = r.stopped;
    return { text: r.stopped ? r.text : r.text + this.matcher.flush(), stopped: r.stopped };
  }

  private entry(token: number, alternatives: readonly TokenLogprob[]): CompletionLogprobs {
    // No prototype: a token spelled "constructor" or "__proto__" must be an ordinary key.
    const top = Object.create(null) as Record<string, number>;
    for (const alt of alternatives.slice(0, this.topLogprobs ?? 0)) {
      const label = tokenLabel(this.tokenizer, alt.id);
      // Two ids can share a label (e.g. two byte pieces); keep the likelier, which comes first.
      if (!Object.hasOwn(top, label)) top[label] = alt.logprob;
    }
    // The cluster reports the top alternatives only: a sampled token outside them has no known logprob.
    const own = alternatives.find((a) => a.id === token)?.logprob ?? null;
    return { tokens: [tokenLabel(this.tokenizer, token)], token_logprobs: [own], top_logprobs: [top], text_offset: [this.decodedChars] };
  }
}
