/**
 * A min-heap of timed callbacks for the simulator. Ties on time are broken by insertion order, so two runs of the
 * same seed pop events in exactly the same order (and a link's FIFO survives equal delivery times).
 */
export interface TimedEvent {
  readonly at: number;
  readonly seq: number;
  readonly run: () => void;
}

const before = (a: TimedEvent, b: TimedEvent): boolean => a.at < b.at || (a.at === b.at && a.seq < b.seq);

export class EventQueue {
  private readonly heap: TimedEvent[] = [];
  private nextSeq = 0;

  get size(): number {
    return this.heap.length;
  }

  push(at: number, run: () => void): void {
    const h = this.heap;
    h.push({ at, seq: this.nextSeq++, run });
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  pop(): TimedEvent | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length === 0 || last === undefined) return top;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && before(h[l]!, h[m]!)) m = l;
      if (r < h.length && before(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
    return top;
  }
}
