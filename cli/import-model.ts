/** `medclip import-model`: a CLIP-style ONNX dual encoder + tokenizer.json -> a model bundle (core/model/import-model.ts). */
import type { Command } from 'commander';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fitFindingsTemperature, importModel } from '../core/model/index.ts';
import type { ImageSpec } from '../core/image/index.ts';
import { evaluateModel } from '../eval/evaluate-model.ts';
import { writeCardFor } from '../eval/model-card.ts';
import { writeFindingsTemperature } from '../train/export.ts';
import { CliError, readInputFile } from './errors.ts';
import { formatCard } from './eval.ts';

/** A real chest X-ray shipped with the package, for the check run when none is given. */
const SAMPLE_XRAY = join(fileURLToPath(new URL('..', import.meta.url)), 'samples/corpus/images/nih/00001303_001.png');

const numbers = (name: string) => (v: string) => {
  const xs = v.split(',').map((x) => Number(x.trim()));
  if (!xs.length || xs.some((x) => !Number.isFinite(x))) throw new CliError(`${name} must be numbers separated by commas, got "${v}"`);
  return xs;
};

export function registerImportModel(program: Command): void {
  program
    .command('import-model')
    .description('make a model bundle from a CLIP-style ONNX dual encoder and its tokenizer.json (checked on a real X-ray and sentence)')
    .requiredOption('--image-onnx <file>', 'image tower: input pixel_values [N, C, S, S], output [N, D] (e.g. image_embeds)')
    .requiredOption('--text-onnx <file>', 'text tower: input input_ids (and attention_mask) [N, L], output [N, D] (e.g. text_embeds)')
    .requiredOption('--tokenizer <file>', 'Hugging Face tokenizer.json (WordPiece or BPE)')
    .requiredOption('--out <dir>', 'model bundle folder to write')
    .option('--name <name>', 'model name (default: the --out folder name)')
    .option('--size <n>', 'square input side in pixels', '224')
    .option('--channels <n>', '1 (grey) or 3 (grey replicated to RGB)', '3')
    .option('--mean <values>', 'normalisation mean, one value or one per channel', numbers('--mean'), [0.48145466, 0.4578275, 0.40821073])
    .option('--std <values>', 'normalisation std, one value or one per channel', numbers('--std'), [0.26862954, 0.26130258, 0.27577711])
    .option('--resize <how>', 'center-crop or pad-square', 'center-crop')
    .option('--interpolation <kind>', 'bilinear, bicubic or lanczos', 'bicubic')
    .option('--max-length <n>', 'tokens per sentence, special tokens included', '77')
    .option('--logit-scale <x>', "the model's logit scale (CLIP: 100)", '100')
    .option('--check-image <file>', 'a chest X-ray to run the image tower on (default: a sample shipped with medclip-search)')
    .option('--images <table>', 'a labelled image table: fit the findings temperature and write the model card (its --split rows)')
    .option('--split <name>', 'with --images: the rows of this split', 'val')
    .option('--root <dir>', "with --images: folder the image paths start from (default: the table's folder)")
    .option('--force', 'replace --out if it exists')
    .action(async (opts) => {
      const channels = Number(opts.channels);
      if (channels !== 1 && channels !== 3) throw new CliError(`--channels must be 1 or 3, got "${opts.channels}"`);
      const one = (xs: number[]) => (xs.length === 1 ? xs[0]! : xs);
      const name = opts.name ?? String(opts.out).replace(/\/+$/, '').split('/').pop();
      const model = await importModel({
        imageOnnx: opts.imageOnnx,
        textOnnx: opts.textOnnx,
        tokenizer: opts.tokenizer,
        out: opts.out,
        name,
        image: {
          size: Number(opts.size),
          channels,
          mean: one(opts.mean),
          std: one(opts.std),
          resize: opts.resize,
          interpolation: opts.interpolation,
        } as ImageSpec,
        maxLength: Number(opts.maxLength),
        logitScale: Number(opts.logitScale),
        checkImage: await readInputFile(opts.checkImage ?? SAMPLE_XRAY),
        checkText: 'No acute cardiopulmonary process. Small left pleural effusion.',
        force: !!opts.force,
      });
      console.log(`wrote ${opts.out}: ${model.name}, embedDim ${model.embedDim}, ${channels} channel(s) at ${opts.size} px`);
      const fit = opts.images
        ? await evaluateModel(model, { images: opts.images, root: opts.root, split: opts.split, task: 'findings', findingsTemperature: 1 })
        : undefined;
      await model.close();
      if (!fit) return;
      // what the imported model knows, measured as the shipped one is: findings temperature, then the model card
      const t = fitFindingsTemperature(fit.findingCases ?? [], model.manifest.logitScale);
      await writeFindingsTemperature(opts.out, {
        temperature: t.temperature,
        nll: t.nll,
        fittedOn: `${opts.images} (split ${opts.split})`,
      });
      console.log(formatCard(await writeCardFor(opts.out, { images: opts.images, root: opts.root, split: opts.split })));
    });
}
