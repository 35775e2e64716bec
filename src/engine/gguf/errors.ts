/** What a GGUF problem is about, so callers (and messages) can point at the culprit. */
export interface GgufErrorSubject {
  readonly key?: string;
  readonly tensor?: string;
}

/**
 * The one error type the GGUF reader and writer throw for bad files or bad input. The message always
 * starts with the file path, then the metadata key or tensor it concerns, so a user can act on it alone.
 */
export class GgufError extends Error {
  readonly file: string;
  readonly key?: string;
  readonly tensor?: string;

  constructor(file: string, problem: string, subject: GgufErrorSubject = {}, options?: { cause?: unknown }) {
    super(formatMessage(file, problem, subject), options);
    this.name = 'GgufError';
    this.file = file;
    if (subject.key !== undefined) this.key = subject.key;
    if (subject.tensor !== undefined) this.tensor = subject.tensor;
  }
}

function formatMessage(file: string, problem: string, subject: GgufErrorSubject): string {
  let where = file;
  if (subject.tensor !== undefined) where += `: tensor '${subject.tensor}'`;
  else if (subject.key !== undefined) where += `: key '${subject.key}'`;
  return `${where}: ${problem}`;
}
