/**
 * Server-Sent Events on a hijacked fastify reply: `data: <json>\n\n` per event, `data: [DONE]\n\n` at the end, as
 * OpenAI streams. Headers go out with the first event, so a request that fails before any token can still be
 * answered with a plain JSON error and status.
 */
import type { FastifyReply } from 'fastify';

export class SseWriter {
  private opened = false;

  constructor(private readonly reply: FastifyReply) {}

  get isOpen(): boolean {
    return this.opened;
  }

  /** The client went away (or the response ended): further writes would go nowhere. */
  get gone(): boolean {
    const res = this.reply.raw;
    return res.destroyed || res.writableEnded;
  }

  async send(data: unknown): Promise<void> {
    await this.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  async done(): Promise<void> {
    await this.write('data: [DONE]\n\n');
    this.end();
  }

  end(): void {
    if (!this.gone) this.reply.raw.end();
  }

  private open(): void {
    if (this.opened) return;
    this.opened = true;
    this.reply.hijack();
    this.reply.raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      // Tell reverse proxies (nginx) not to buffer: tokens should reach the client as they are made.
      'x-accel-buffering': 'no',
    });
  }

  /** Waits for 'drain' when the socket buffer is full, so a slow reader slows us instead of growing memory. */
  private async write(chunk: string): Promise<void> {
    this.open();
    if (this.gone) return;
    const res = this.reply.raw;
    if (res.write(chunk)) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        res.off('drain', done);
        res.off('close', done);
        resolve();
      };
      res.on('drain', done);
      res.on('close', done);
    });
  }
}
