import { availableParallelism } from 'node:os';
import type { Command } from 'commander';
import { generate } from '../engine/generate.js';
import { createKernels } from '../engine/kernels/index.js';
import { loadStage, openModel, wholeModel } from '../engine/model/load.js';
import { LocalPipeline } from '../engine/model/pipeline.js';
import { DEFAULT_SAMPLER, type SamplerParams } from '../engine/sampler.js';
import { tokenizerFromGguf } from '../engine/tokenizer/index.js';
import { UsageError } from './errors.js';
import { floatArg, idListArg, intArg } from './options.js';

export interface GenerateCliOptions {
  model: string;
  prompt?: string;
  promptIds?: number[];
  maxTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repeatPenalty: number;
  seed: number;
  threads: number;
  topLogprobs: number;
  ignoreEos: boolean;
  json: boolean;
  workers?: number;
}

export function defaultThreads(): number {
  return Math.max(1, Math.min(8, availableParallelism()));
}

export function registerGenerate(program: Command): void {
  program
    .command('generate')
    .description('generate text from a prompt with a GGUF model')
    .requiredOption('-m, --model <file>', 'GGUF model file')
    .option('-p, --prompt <text>', 'prompt text (tokenized with the model\'s tokenizer, BOS added if the model asks)')
    .option('--prompt-ids <ids>', 'prompt as comma-separated token ids, fed as given (no BOS added)', idListArg)
    .option('-n, --max-tokens <n>', 'tokens to generate', intArg('--max-tokens', 1), 128)
    .option('--temperature <t>', 'sampling temperature; 0 = greedy', floatArg('--temperature', 0, 100), DEFAULT_SAMPLER.temperature)
    .option('--top-k <k>', 'keep the k most likely tokens (0 = off)', intArg('--top-k', 0), DEFAULT_SAMPLER.topK)
    .option('--top-p <p>', 'nucleus sampling mass (1 = off)', floatArg('--top-p', 0, 1), DEFAULT_SAMPLER.topP)
    .option('--min-p <p>', 'drop tokens below p × the best probability (0 = off)', floatArg('--min-p', 0, 1), DEFAULT_SAMPLER.minP)
    .option('--repeat-penalty <r>', 'repetition penalty over the last 64 tokens (1 = off)', floatArg('--repeat-penalty', 0, 100), DEFAULT_SAMPLER.repeatPenalty)
    .option('-s, --seed <s>', 'sampler seed', intArg('--seed', 0, 0xffffffff), 0)
    .option('-t, --threads <n>', 'compute threads', intArg('--threads', 1, 256), defaultThreads())
    .option('--top-logprobs <k>', 'report the k most likely tokens per step (with --json)', intArg('--top-logprobs', 0, 100), 0)
    .option('--ignore-eos', 'keep generating past end-of-sequence tokens', false)
    .option('--json', 'print one JSON object instead of streaming text', false)
    .option('--workers <n>', 'split the model across n local worker processes (reserved: arrives with the cluster)', intArg('--workers', 1, 64))
    .action(async (opts: GenerateCliOptions) => {
      await runGenerate(opts);
    });
}

export async function runGenerate(opts: GenerateCliOptions): Promise<void> {
  if ((opts.prompt === undefined) === (opts.promptIds === undefined)) {
    throw new UsageError('give exactly one of --prompt TEXT or --prompt-ids 1,2,3');
  }
  if (opts.workers !== undefined) throw new UsageError('--workers is reserved for the cluster and not available yet');
  const tLoad = performance.now();
  const model = openModel(opts.model);
  const tokenizer = tokenizerFromGguf(model.file);
  const kernels = createKernels({ threads: opts.threads });
  try {
    const stage = loadStage(model, wholeModel(model.cfg), kernels);
    const loadMs = performance.now() - tLoad;
    const promptIds = opts.promptIds ?? tokenizer.encode(opts.prompt!, { addBos: tokenizer.addBos });
    for (const id of promptIds) {
      if (id >= model.cfg.vocabSize) throw new UsageError(`prompt token id ${id} is outside the vocabulary (0..${model.cfg.vocabSize - 1})`);
    }
    const sampler: SamplerParams = {
      temperature: opts.temperature, topK: opts.topK, topP: opts.topP, minP: opts.minP,
      repeatPenalty: opts.repeatPenalty, repeatLastN: DEFAULT_SAMPLER.repeatLastN, seed: opts.seed,
    };
    const decoder = tokenizer.newStreamDecoder();
    let text = '';
    const result = await generate(
      new LocalPipeline([stage]),
      {
        promptIds, maxTokens: opts.maxTokens, sampler, topLogprobs: opts.topLogprobs,
        isEog: (id) => tokenizer.isEog(id), ignoreEos: opts.ignoreEos, contextLength: model.cfg.contextLength,
      },
      (id) => {
        if (!opts.ignoreEos && tokenizer.isEog(id)) return;
        const piece = decoder.push(id);
        text += piece;
        if (!opts.json) process.stdout.write(piece);
      },
    );
    const tail = decoder.flush();
    text += tail;
    if (opts.json) {
      const out = {
        tokens: result.tokens,
        text,
        top_logprobs: result.topLogprobs,
        finish_reason: result.finishReason,
        timings: { load_ms: loadMs, ...result.timings },
      };
      process.stdout.write(JSON.stringify(out) + '\n');
    } else {
      process.stdout.write(tail + '\n');
      const t = result.timings;
      process.stderr.write(
        `[load ${loadMs.toFixed(0)} ms | prompt ${t.prompt_tokens} tok, ${t.prompt_tokens_per_s.toFixed(1)} tok/s | ` +
          `decode ${t.decode_tokens} tok, ${t.decode_tokens_per_s.toFixed(1)} tok/s | ${kernels.name} kernels, ${kernels.threads} thread(s)]\n`,
      );
    }
  } finally {
    kernels.dispose();
    model.file.close();
  }
}
