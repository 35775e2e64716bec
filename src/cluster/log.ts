/** One-line logs with a time and the component, to stderr: what happened, said plainly. */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export function createLogger(component: string, opts: { quiet?: boolean } = {}): Logger {
  const line = (level: string, message: string): void => {
    if (opts.quiet && level === 'info') return;
    process.stderr.write(`${new Date().toISOString()} ${level} [${component}] ${message}\n`);
  };
  return {
    info: (m) => line('info', m),
    warn: (m) => line('warn', m),
    error: (m) => line('error', m),
  };
}

export const silentLogger: Logger = { info: () => {}, warn: () => {}, error: () => {} };
