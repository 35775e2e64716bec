import { availableParallelism } from 'node:os';
import type { Command } from 'commander';
import { generate, type GenerateTimings } from '../engine/generate.js';
import { startEmbeddedCluster } from '../cluster/embedded.js';
import { createLogger } from '../cluster/log.js';
import { createKernels } from '../engine/kernels/index.js';
import { loadStage, openModel, wholeModel } from '../engine/model/load.js';
import { LocalPipeline } from '../engine/model/pipeline.js';
import { DEFAULT_SAMPLER, type SamplerParams, type TokenLogprob } from '../engine/sampler.js';
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
  verbose?: boolean;
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
    .option('--workers <n>', 'split the model across n local worker processes (same output, bit for bit)', intArg('--workers', 1, 64))
    .option('--verbose', 'show coordinator and worker logs (with --workers)', false)
    .action(async (opts: GenerateCliOptions) => {
      await runGenerate(opts);
    });
}

export async function runGenerate(opts: GenerateCliOptions): Promise<void> {
  if ((opts.prompt === undefined) === (opts.promptIds === undefined)) {
    throw new UsageError('give exactly one of --prompt TEXT or --prompt-ids 1,2,3');
  }
  if (opts.workers !== undefined) return runClusterGenerate(opts);
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
    if (!opts.json) process.stdout.write(tail);
    printResult(opts, { ...result, text, loadMs }, `${kernels.name} kernels, ${kernels.threads} thread(s)`);
  } finally {
    kernels.dispose();
    model.file.close();
  }
}

interface PrintableResult {
  tokens: number[];
  text: string;
  topLogprobs: TokenLogprob[][];
  finishReason: string;
  timings: GenerateTimings;
  loadMs: number;
}

/** The output contract of `butterfly generate`, shared by the local and the cluster paths. */
function printResult(opts: GenerateCliOptions, r: PrintableResult, how: string): void {
  if (opts.json) {
    const out = { tokens: r.tokens, text: r.text, top_logprobs: r.topLogprobs, finish_reason: r.finishReason, timings: { load_ms: r.loadMs, ...r.timings } };
    process.stdout.write(JSON.stringify(out) + '\n');
    return;
  }
  process.stdout.write('\n');
  const t = r.timings;
  process.stderr.write(
    `[load ${r.loadMs.toFixed(0)} ms | prompt ${t.prompt_tokens} tok, ${t.prompt_tokens_per_s.toFixed(1)} tok/s | ` +
      `decode ${t.decode_tokens} tok, ${t.decode_tokens_per_s.toFixed(1)} tok/s | ${how}]\n`,
  );
}

/** `generate --workers N`: the same request through an embedded cluster of N worker processes. */
async function runClusterGenerate(opts: GenerateCliOptions): Promise<void> {
  const tLoad = performance.now();
  const logger = createLogger('coordinator', { quiet: !opts.verbose });
  const cluster = await startEmbeddedCluster({
    modelPath: opts.model, workers: opts.workers!, command: [process.execPath, process.argv[1]!], logger,
    workerLogs: opts.verbose === true, threadsPerWorker: Math.max(1, Math.floor(opts.threads / opts.workers!)),
  });
  try {
    const node = cluster.coordinator;
    const tokenizer = node.tokenizer;
    const loadMs = performance.now() - tLoad;
    const promptIds = opts.promptIds ?? tokenizer.encode(opts.prompt!, { addBos: tokenizer.addBos });
    const vocab = node.catalog.model.cfg.vocabSize;
    for (const id of promptIds) if (id >= vocab) throw new UsageError(`prompt token id ${id} is outside the vocabulary (0..${vocab - 1})`);
    const decoder = tokenizer.newStreamDecoder();
    let text = '';
    const tokens: number[] = [];
    const lps: TokenLogprob[][] = [];
    const tSubmit = performance.now();
    let tFirst = 0;
    const finish = await new Promise<string>((resolve, reject) => {
      node.submit({
        promptIds, maxTokens: opts.maxTokens, topLogprobs: opts.topLogprobs, ignoreEos: opts.ignoreEos,
        sampler: {
          temperature: opts.temperature, topK: opts.topK, topP: opts.topP, minP: opts.minP,
          repeatPenalty: opts.repeatPenalty, repeatLastN: DEFAULT_SAMPLER.repeatLastN, seed: opts.seed,
        },
      }, {
        onToken: (id, lp) => {
          if (tokens.length === 0) tFirst = performance.now();
          tokens.push(id);
          if (lp) lps.push(lp);
          if (!opts.ignoreEos && tokenizer.isEog(id)) return;
          const piece = decoder.push(id);
          text += piece;
          if (!opts.json) process.stdout.write(piece);
        },
        onFinish: (reason) => (reason === 'error' ? reject(new Error('the cluster failed the request (see logs with --verbose)')) : resolve(reason)),
      });
    });
    const tEnd = performance.now();
    const tail = decoder.flush();
    text += tail;
    if (!opts.json) process.stdout.write(tail);
    const decodeTokens = Math.max(0, tokens.length - 1);
    const promptMs = tFirst - tSubmit;
    const decodeMs = tEnd - tFirst;
    printResult(opts, {
      tokens, text, topLogprobs: lps, finishReason: finish, loadMs,
      timings: {
        prompt_tokens: promptIds.length, prompt_ms: promptMs, prompt_tokens_per_s: promptMs > 0 ? (promptIds.length * 1000) / promptMs : 0,
        decode_tokens: decodeTokens, decode_ms: decodeMs, decode_tokens_per_s: decodeMs > 0 ? (decodeTokens * 1000) / decodeMs : 0,
      },
    }, `${opts.workers} worker process(es)`);
  } finally {
    await cluster.stop('generate finished');
  }
}
