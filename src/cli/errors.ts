import { GgufError } from '../engine/gguf/errors.js';
import { PromptTooLongError } from '../engine/generate.js';

/** Exit codes the CLI promises: 0 ok, 1 usage or runtime error, 2 bad model file. */
export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
export const EXIT_BAD_MODEL = 2;

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Print one clear line for an error and return the exit code for it. */
export function reportError(err: unknown): number {
  if (err instanceof GgufError) {
    process.stderr.write(`butterfly: bad model file: ${err.message}\n`);
    return EXIT_BAD_MODEL;
  }
  if (err instanceof UsageError || err instanceof PromptTooLongError || err instanceof RangeError) {
    process.stderr.write(`butterfly: ${err.message}\n`);
    return EXIT_ERROR;
  }
  const e = err as Error;
  process.stderr.write(`butterfly: ${e?.stack ?? String(err)}\n`);
  return EXIT_ERROR;
}
