import { Command, CommanderError } from 'commander';
import { EXIT_ERROR, reportError } from './errors.js';
import { defaultThreads, registerGenerate, runGenerate } from './generate.js';
import { ensureSyntheticModel, registerModel } from './synth.js';
import { registerCoordinator, registerWorker } from './cluster.js';

function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('synthesize the demo model if missing and generate from it (what `npm start` runs)')
    .option('--prompt <text>', 'prompt', 'Once upon a time')
    .action(async (opts: { prompt: string }) => {
      const model = ensureSyntheticModel('small', 'q8_0');
      process.stderr.write(`model: ${model}\n`);
      await runGenerate({
        model, prompt: opts.prompt, maxTokens: 64, temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05,
        repeatPenalty: 1.1, seed: 42, threads: defaultThreads(), topLogprobs: 0, ignoreEos: false, json: false,
      });
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
  registerWorker(program);
  registerCoordinator(program);
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
