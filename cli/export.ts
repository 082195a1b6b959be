/** `medclip export`: checkpoint -> model bundle (ONNX), with a tfjs-vs-onnxruntime parity check. */
import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readImageTable, readReports, reportText } from '../core/tables/index.ts';
import { BUILTIN_TEMPLATES, expandTemplate } from '../core/model/index.ts';
import { writeCardFor } from '../eval/model-card.ts';
import { formatCard } from './eval.ts';
import { labelReport } from '../core/labeler/index.ts';
import { selectBackend } from '../train/backend.ts';
import { checkpointDir, exportRun } from '../train/export.ts';
import { checkpointFolder } from '../train/checkpoint.ts';
import { CliError } from './errors.ts';

/** Parity inputs: a few images and report sentences of the run's own data (when reachable) plus prompts. */
async function parityInputs(
  run: string,
  checkpoint: string,
  count: number,
  imageTable?: string,
): Promise<{ images: Uint8Array[]; sentences: string[] }> {
  const sentences = Object.values(BUILTIN_TEMPLATES).flatMap((t) => expandTemplate(t).slice(0, 2));
  const images: Uint8Array[] = [];
  const folder = checkpointFolder(join(run, `checkpoint-${checkpoint}`));
  const stateFile = folder ? join(folder, 'state.json') : '';
  const options =
    folder && existsSync(stateFile)
      ? ((JSON.parse(await readFile(stateFile, 'utf8')) as { options?: Record<string, string> }).options ?? {})
      : {};
  const table = imageTable ?? options.images;
  if (table && existsSync(table)) {
    for await (const r of readImageTable(table, { root: imageTable ? undefined : options.root })) {
      try {
        images.push(await readFile(r.file));
      } catch {
        continue;
      }
      if (images.length >= count) break;
    }
  }
  if (options.reports && existsSync(options.reports)) {
    for await (const r of readReports(options.reports)) {
      sentences.push(...labelReport(reportText(r)).sentences.map((s) => s.text));
      if (sentences.length >= 3 * count) break;
    }
  }
  return { images, sentences };
}

export function registerExport(program: Command): void {
  program
    .command('export')
    .description('write a model bundle (ONNX encoders, tokenizer, manifest) from a training run, and check parity')
    .requiredOption('--run <dir>', 'training run folder (medclip train --out)')
    .requiredOption('--out <dir>', 'model bundle folder to write (replaced atomically)')
    .option('--checkpoint <which>', 'best (by validation) or latest', 'best')
    .option('--tolerance <x>', 'largest allowed |tfjs - onnxruntime| embedding difference', '1e-4')
    .option('--parity-images <table>', "image table to take parity-check images from (default: the run's own)")
    .option('--backend <name>', 'tfjs backend for the parity check', 'auto')
    .option('--card-images <table>', 'also write the model card (card.json) from this labelled image table (see medclip eval --card)')
    .option('--card-split <name>', 'with --card-images: the rows of this split', 'val')
    .option('--card-root <dir>', "with --card-images: folder the image paths start from (default: the table's folder)")
    .action(async (opts) => {
      if (opts.checkpoint !== 'best' && opts.checkpoint !== 'latest') throw new CliError('--checkpoint must be best or latest');
      await selectBackend(opts.backend).catch((err: Error) => {
        throw new CliError(err.message);
      });
      checkpointDir(opts.run, opts.checkpoint);
      const { images, sentences } = await parityInputs(opts.run, opts.checkpoint, 8, opts.parityImages);
      if (images.length === 0)
        throw new CliError("no images for the parity check: the run's image table is not reachable; pass --parity-images TABLE");
      const result = await exportRun({
        run: opts.run,
        out: opts.out,
        checkpoint: opts.checkpoint,
        parityImages: images,
        paritySentences: sentences,
        tolerance: Number(opts.tolerance),
      });
      console.log(
        `wrote ${result.dir}: ${result.manifest.name}, embedDim ${result.manifest.embedDim}; parity max |tfjs - onnx| ` +
          `image ${result.parity.image.toExponential(1)} (${images.length} images), text ${result.parity.text.toExponential(1)} (${sentences.length} sentences)`,
      );
      if (opts.cardImages) {
        // the card says what the exported model can judge: written now, before any index is built with it
        console.log(formatCard(await writeCardFor(result.dir, { images: opts.cardImages, root: opts.cardRoot, split: opts.cardSplit })));
      }
    });
}
