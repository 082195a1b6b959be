/** `medclip index` (build, append, resume, delete) and `medclip search` (query a bundle from the shell). */
import type { Command } from 'commander';
import { SingleBar } from 'cli-progress';
import { IndexBundle, type SearchFilter } from '../core/bundle/index.ts';
import { MedClipModel } from '../core/model/index.ts';
import { buildIndex } from '../index-builder/build.ts';
import { deleteFromBundle, upgradeBundle } from '../index-builder/rewrite.ts';
import { LambdaEmbedder } from '../index-builder/lambda-embedder.ts';
import { CliError, namingFile, readInputFile } from './errors.ts';
import { readEnv } from '../core/util/index.ts';
import type { DicomwebSource } from '../index-builder/dicomweb-source.ts';
import type { DicomwebAuth } from '../core/dicom/index.ts';
import { SearchService, type ImageHit, type ReportHit } from '../core/search/index.ts';

const intOpt = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new CliError(`${name} must be a positive integer, got "${v}"`);
  return n;
};
const list = (v: string) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/** DICOMweb credentials: `--dicomweb-user` with the password from the environment (never from the command line), or a token. */
export function dicomwebAuth(user: string | undefined): DicomwebAuth | undefined {
  const env = readEnv();
  if (user && env.MEDCLIP_DICOMWEB_PASSWORD === undefined)
    throw new CliError('--dicomweb-user needs the password in MEDCLIP_DICOMWEB_PASSWORD (kept off the command line)');
  return env.MEDCLIP_DICOMWEB_TOKEN
    ? { token: env.MEDCLIP_DICOMWEB_TOKEN }
    : user
      ? { user, password: env.MEDCLIP_DICOMWEB_PASSWORD! }
      : undefined;
}

/** The --dicomweb source from the flags. */
function dicomwebOptions(opts: Record<string, unknown>): DicomwebSource {
  return {
    url: String(opts.dicomweb),
    auth: dicomwebAuth(opts.dicomwebUser as string | undefined),
    since: opts.since as string | undefined,
    studies: opts.study as string[] | undefined,
    allModalities: !!opts.allModalities,
    concurrency: opts.dicomwebConcurrency as number,
  };
}

export function registerIndex(program: Command): void {
  program
    .command('index')
    .description('embed images and reports into an HNSW index bundle (or --delete items from one)')
    .requiredOption('--model <dir>', 'model bundle folder')
    .requiredOption('--out <dir>', 'index bundle folder (written atomically)')
    .option('--images <file>', 'image table (CSV): path + optional labels, view, source')
    .option('--image-dir <dir>', 'index every PNG/JPEG/DICOM under this folder instead')
    .option('--dicomweb <url>', 'index chest X-rays (CR/DX, body part CHEST) and their text SR reports from a DICOMweb server')
    .option('--since <date>', "with --dicomweb: studies from this date on (YYYY-MM-DD; default on --append: the last run's cursor)")
    .option('--study <uids...>', 'with --dicomweb: only these studies (Study Instance UIDs)')
    .option('--all-modalities', 'with --dicomweb: every modality and body part, not only CR/DX chest')
    .option(
      '--dicomweb-user <user>',
      'with --dicomweb: Basic Auth user (password from MEDCLIP_DICOMWEB_PASSWORD; MEDCLIP_DICOMWEB_TOKEN for a bearer token)',
    )
    .option('--dicomweb-concurrency <n>', 'with --dicomweb: instances fetched at once', intOpt('--dicomweb-concurrency'), 4)
    .option('--root <dir>', "folder the table's image paths start from (default: the table's folder)")
    .option('--split <name>', 'only image rows of this split')
    .option('--reports <file>', 'report table (CSV or JSONL)')
    .option('--report-split <name>', 'only report rows of this split')
    .option('--id-column <name>', 'report id column')
    .option('--text-columns <list>', 'report text columns (comma-separated)', 'findings,impression')
    .option('--resume', 'insist on continuing an interrupted build (the same command continues one anyway; other inputs start over)')
    .option('--append', 'add the given items to the latest version of the bundle in --out (a new version)')
    .option('--force', 'replace the content of an existing bundle in --out (a new version; the previous one is kept until the next)')
    .option('--delete <ids...>', 'remove these image or report ids (a new version)')
    .option('--upgrade', 'rewrite a bundle of an older format (index format 1) as the current one (a new version)')
    .option('--lock-timeout <seconds>', 'how long to wait while another process writes the same bundle', intOpt('--lock-timeout'), 600)
    .option(
      '--workers <n|lambda:FUNCTION>',
      'embedding workers: N threads (each with its own model), or an AWS Lambda function to fan out to',
      '1',
    )
    .option('--lambda-concurrency <n>', 'with --workers lambda:F, Lambda invocations in flight', intOpt('--lambda-concurrency'), 8)
    .option('--threads <n>', 'onnxruntime threads in-process', intOpt('--threads'), 2)
    .option('--batch <n>', 'images per embedding batch', intOpt('--batch'), 32)
    .option('--m <n>', 'HNSW M (links per node)', intOpt('--m'))
    .option('--ef-construction <n>', 'HNSW efConstruction', intOpt('--ef-construction'))
    .option('--ef-search <n>', 'default HNSW efSearch stored in the bundle', intOpt('--ef-search'))
    .option('--shard-size <n>', 'vectors per HNSW shard', intOpt('--shard-size'))
    .option('--thumbnails', 'store a 256 px JPEG preview of each image in the bundle (for the API)')
    .option('--json', 'print the summary as JSON')
    .action(async (opts) => {
      const lock = {
        waitMs: opts.lockTimeout * 1000,
        onWait: (holder: string) => console.error(`medclip: waiting for ${holder} to finish writing ${opts.out}`),
      };
      if (opts.upgrade) {
        const r = await upgradeBundle(opts.out, opts.model, lock);
        console.log(
          opts.json
            ? JSON.stringify(r)
            : r.alreadyCurrent
              ? `${opts.out} is already in the current format (version ${r.version})`
              : `upgraded ${opts.out} to version ${r.version}: ${r.sentences} sentences with their text, and the lexical index`,
        );
        return;
      }
      if (opts.delete) {
        const r = await deleteFromBundle(opts.out, opts.model, opts.delete, lock);
        console.log(
          opts.json
            ? JSON.stringify(r)
            : `marked ${r.deleted} item(s) deleted (version ${r.version})${r.unknown.length ? `; not found: ${r.unknown.join(', ')}` : ''}`,
        );
        if (r.deleted === 0) process.exitCode = 1;
        return;
      }
      // Rate and ETA are our own: shown only once measured (>= 2 s of work since this collection started, items
      // carried over from an --append or --resume not counted), never a first-batch spike or a placeholder.
      const bar = new SingleBar({
        format: '{collection} [{bar}] {value}{of} done, {skipped} skipped | {speed} | {etaText}',
        stream: process.stderr,
        noTTYOutput: true,
        notTTYSchedule: 10000,
      });
      let base = 0;
      let current = '';
      let started = false;
      let t0 = Date.now();
      const lambda = /^lambda:(.+)$/.exec(String(opts.workers));
      const workers = lambda ? 1 : intOpt('--workers')(String(opts.workers));
      const embedder = lambda ? new LambdaEmbedder(lambda[1]!, { log: (l) => console.error(l) }) : undefined;
      // The bar's timer would keep the process alive after an error: it is stopped on every path.
      const summary = await buildIndex({
        lock,
        force: !!opts.force,
        embedder,
        model: opts.model,
        out: opts.out,
        images: opts.images,
        imageDir: opts.imageDir,
        dicomweb: opts.dicomweb ? dicomwebOptions(opts) : undefined,
        root: opts.root,
        split: opts.split,
        reports: opts.reports,
        reportSplit: opts.reportSplit,
        idColumn: opts.idColumn,
        textColumns: list(opts.textColumns),
        resume: !!opts.resume,
        append: !!opts.append,
        thumbnails: !!opts.thumbnails,
        workers,
        inFlight: lambda ? opts.lambdaConcurrency : undefined,
        threads: opts.threads,
        batchSize: opts.batch,
        hnsw: {
          ...(opts.m ? { M: opts.m } : {}),
          ...(opts.efConstruction ? { efConstruction: opts.efConstruction } : {}),
          ...(opts.efSearch ? { efSearch: opts.efSearch } : {}),
          ...(opts.shardSize ? { shardSize: opts.shardSize } : {}),
        },
        log: (line) => {
          if (started) bar.stop();
          started = false;
          console.error(line);
        },
        onProgress: (collection, done, skipped, total) => {
          const n = done + skipped;
          if (current !== collection) {
            t0 = Date.now();
            base = n;
          }
          const { speed, eta } = rateAndEta(n - base, (Date.now() - t0) / 1000, total === undefined ? undefined : total - n);
          if (!started || current !== collection) {
            if (started) bar.stop();
            bar.start(total ?? 0, n, { collection, skipped, speed, etaText: eta, of: total === undefined ? '' : `/${total}` });
            started = true;
            current = collection;
          }
          // the input is counted while the build runs: the total (and ETA) appear once it is known
          if (total !== undefined && bar.getTotal() !== total) bar.setTotal(total);
          bar.update(n, { collection, skipped, speed, etaText: eta, of: total === undefined ? '' : `/${total}` });
        },
      }).finally(() => {
        if (started) bar.stop();
        started = false;
      });
      if (opts.json) console.log(JSON.stringify(summary));
      else
        console.log(
          `wrote ${summary.out} (version ${summary.version}): ${summary.images.indexed} images (${summary.images.skipped} skipped), ` +
            `${summary.reports.reports} reports / ${summary.reports.sentences} sentences (${summary.reports.skipped} skipped)` +
            (summary.dicomweb
              ? `; server: ${summary.dicomweb.listed} instances listed, ${summary.dicomweb.alreadyIndexed} already indexed, ` +
                `${summary.dicomweb.fetched} fetched${summary.dicomweb.cached ? ` (+${summary.dicomweb.cached} from the interrupted run)` : ''}, ` +
                `${summary.dicomweb.filtered} not chest`
              : '') +
            (summary.images.skipped + summary.reports.skipped ? `; see ${summary.errorsFile}` : ''),
        );
    });

  program
    .command('search')
    .description('query an index bundle with text or an image (a table; JSON lines with --json)')
    .option('--model <dir>', 'model bundle folder', 'models/medclip-tiny')
    .option('--index <dir>', 'index bundle folder', 'indexes/sample')
    .option('--text <query>', 'a finding, e.g. "right lower lobe pneumonia"')
    .option('--image <file>', 'an X-ray (PNG, JPEG or DICOM)')
    .option('--target <what>', 'images or reports (default, as the API: images for --text, reports for --image)')
    .option('--k <n>', 'number of hits', intOpt('--k'), 10)
    .option('--must <list>', 'findings that must be positive (comma-separated)')
    .option('--must-not <list>', 'findings that must not be positive')
    .option('--view <list>', 'allowed views')
    .option('--source <list>', 'allowed sources')
    .option('--json', 'one JSON line per hit')
    .action(async (opts) => {
      if (!opts.text === !opts.image) throw new CliError('give exactly one of --text or --image');
      opts.target ??= opts.image ? 'reports' : 'images';
      if (opts.target !== 'images' && opts.target !== 'reports') throw new CliError('--target must be images or reports');
      const image = opts.image ? await readInputFile(opts.image) : undefined;
      const model = await MedClipModel.load(opts.model);
      try {
        // the API's own service: spelling correction, findings with polarity, hybrid report ranking, collapsing
        const service = await SearchService.create(model, await IndexBundle.load(opts.index, { model }));
        const filter: SearchFilter = {};
        if (opts.must) filter.must = list(opts.must);
        if (opts.mustNot) filter.mustNot = list(opts.mustNot);
        if (opts.view) filter.view = list(opts.view);
        if (opts.source) filter.source = list(opts.source);
        const request = { target: opts.target as 'images' | 'reports', k: opts.k as number, filter };
        const result = image
          ? await namingFile(opts.image, service.searchImage(image, request))
          : await service.searchText({ ...request, query: String(opts.text) });
        for (const w of result.query.warnings ?? []) console.error(`note: ${w}`);
        if (image)
          console.error(
            `findings of the X-ray: ${result.query.findings.map((f) => `${f.name} (${f.validated ? `validated, AUC ${f.auc?.toFixed(2)}` : 'not validated: not used to rank'})`).join(', ')}`,
          );
        if (result.query.corrected) console.error(`searched for: ${result.query.corrected}`);
        const positives = (labels: Record<string, number>) =>
          Object.entries(labels)
            .filter(([, v]) => v === 1)
            .map(([k]) => k)
            .join(', ') || '-';
        if (opts.json) for (const h of result.hits) console.log(JSON.stringify(h));
        else if (opts.target === 'images')
          printTable(
            ['score', 'id', 'findings', 'view', 'source'],
            (result.hits as ImageHit[]).map((h) => [h.score.toFixed(3), h.id, positives(h.labels), h.view ?? '', h.source ?? '']),
          );
        else
          printTable(
            ['score', 'relevance', 'report', 'matched sentence', 'report findings'],
            (result.hits as ReportHit[]).map((h) => [
              h.score.toFixed(3),
              h.relevance?.toFixed(2) ?? '-',
              h.id,
              h.sentence.reports > 1 ? `${h.sentence.text} (in ${h.sentence.reports} reports)` : h.sentence.text,
              positives(h.labels),
            ]),
          );
      } finally {
        await model.close();
      }
    });
}

/** Progress figures once they mean something: a rate after 2 s of work, an ETA when the remaining count is known. */
export function rateAndEta(items: number, seconds: number, remaining: number | undefined): { speed: string; eta: string } {
  if (seconds < 2 || items <= 0) return { speed: 'measuring rate', eta: 'ETA after the rate' };
  const rate = items / seconds;
  if (remaining === undefined) return { speed: `${rate.toFixed(1)} items/s`, eta: 'ETA once the input is counted' };
  const left = Math.max(0, Math.round(remaining / rate));
  const hms =
    left >= 3600
      ? `${Math.floor(left / 3600)}h${String(Math.floor((left % 3600) / 60)).padStart(2, '0')}m`
      : `${Math.floor(left / 60)}m${String(left % 60).padStart(2, '0')}s`;
  return { speed: `${rate.toFixed(1)} items/s`, eta: `ETA ${hms}` };
}

/** A plain text table: columns padded to their widest cell (the last one left free). */
function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, c) => Math.min(60, Math.max(h.length, ...rows.map((r) => r[c]!.length))));
  const line = (cells: string[]) =>
    cells
      .map((x, c) => (c === cells.length - 1 ? x : x.length > widths[c]! ? `${x.slice(0, widths[c]! - 1)}…` : x.padEnd(widths[c]!)))
      .join('  ');
  console.log(line(header));
  for (const r of rows) console.log(line(r));
}
