/** `medclip classify`: zero-shot classification of one X-ray, exclusive (softmax over classes) or findings mode. */
import type { Command } from 'commander';
import { MedClipModel, DEFAULT_CLASS_NAMES, resolveClasses } from '../core/model/index.ts';
import { CliError, namingFile, readInputFile } from './errors.ts';

export function registerClassify(program: Command): void {
  program
    .command('classify')
    .description('zero-shot classification of an X-ray: exclusive classes, or every finding on its own (--mode findings)')
    .option('--model <dir>', 'model bundle folder', 'models/medclip-tiny')
    .requiredOption('--image <file>', 'an X-ray (PNG, JPEG or DICOM)')
    .option('--mode <mode>', 'exclusive (softmax over the classes) or findings (each observation independently)', 'exclusive')
    .option('--classes <list>', 'comma-separated: built-in classes (exclusive) or observations (findings); default all')
    .option('--json', 'print one JSON object')
    .action(async (opts) => {
      if (opts.mode !== 'exclusive' && opts.mode !== 'findings')
        throw new CliError(`--mode must be exclusive or findings, got "${opts.mode}"`);
      const bytes = await readInputFile(opts.image);
      const names = opts.classes
        ? String(opts.classes)
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean)
        : undefined;
      const model = await MedClipModel.load(opts.model);
      try {
        const [vector] = await namingFile(opts.image, model.embedImages([bytes]));
        const scored =
          opts.mode === 'findings'
            ? (await model.findings(vector!, names)).map((f) => ({ name: f.name as string, probability: f.probability }))
            : (await model.classify(vector!, resolveClasses(names ?? DEFAULT_CLASS_NAMES))).sort((a, b) => b.probability - a.probability);
        // what the model card says of each finding: an unvalidated probability means nothing yet
        const classes = scored.map((c) => ({ ...c, ...model.validity(c.name) }));
        if (opts.json) console.log(JSON.stringify({ mode: opts.mode, classes }));
        else {
          for (const c of classes)
            console.log(
              `${c.name.padEnd(28)} ${c.probability.toFixed(3)}  ${c.validated ? `validated (AUC ${c.auc?.toFixed(2)})` : 'not validated'}${opts.mode === 'findings' && c.probability >= 0.5 ? '  present' : ''}`,
            );
          if (classes.some((c) => !c.validated))
            console.error('note: "not validated" findings did not separate on held-out images (model card): their scores mean nothing yet');
        }
      } finally {
        await model.close();
      }
    });
}
