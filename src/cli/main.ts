import { Command, CommanderError } from 'commander';
import { EXIT_ERROR, reportError } from './errors.js';
import { registerGenerate } from './generate.js';
import { intArg } from './options.js';
import { registerPlan } from './plan.js';
import { registerStatus } from './status.js';
import { ensureSyntheticModel, registerModel } from './synth.js';
import { registerCoordinator, registerServe, registerWorker, runServe } from './cluster.js';

function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('what `npm start` runs: synthesize the demo model if missing, then serve it with 2 local workers')
    .option('--port <port>', 'HTTP port', intArg('--port', 0, 65535), 8080)
    .option('--workers <n>', 'local worker processes', intArg('--workers', 1, 64), 2)
    .action(async (opts: { port: number; workers: number }) => {
      const model = ensureSyntheticModel('small', 'q8_0');
      process.stderr.write(`demo model: ${model} (seeded synthetic weights: the text is gibberish, but every bit is reproducible)\n`);
      await runServe({ model, workers: opts.workers, port: opts.port, host: '127.0.0.1', streamWeights: false });
    });
}

export async function main(argv: string[]): Promise<void> {
  const program = new Command();
  program
    .name('butterfly')
    .description('Exact, deterministic Llama inference split across worker processes')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();
  registerGenerate(program);
  registerModel(program);
  registerDemo(program);
  registerServe(program);
  registerWorker(program);
  registerCoordinator(program);
  registerStatus(program);
  registerPlan(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : EXIT_ERROR;
      return;
    }
    process.exitCode = reportError(err);
  }
}
