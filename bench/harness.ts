/**
 * What every bench shares: its flags parsed once (`--json` always; an unknown flag is one line and exit 1), progress
 * lines on stdout (on stderr with `--json`, so stdout holds only the result), the result printed as one JSON line,
 * and the percentiles the benches report.
 *
 *   const { args, say, result } = benchArgs({ n: { type: 'string', default: '100000' } });
 *   say(`built ${args.n} vectors`);
 *   result({ p50Ms: p50(times) });   // one JSON line with --json
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;
type WithJson<O extends Options> = O & { json: { type: 'boolean'; default: false } };
type Values<O extends Options> = ReturnType<typeof parseArgs<{ options: WithJson<O> }>>['values'];

export function benchArgs<const O extends Options>(
  options: O,
): { args: Values<O>; say: (line: string) => void; result: (value: unknown) => void } {
  let parsed: Values<O>;
  try {
    parsed = parseArgs({ options: { ...options, json: { type: 'boolean', default: false } } as WithJson<O> }).values;
  } catch (err) {
    console.error(`bench: ${(err as Error).message}`);
    process.exit(1);
  }
  const json = (parsed as { json?: boolean }).json === true;
  return {
    args: parsed,
    say: (line) => (json ? console.error(line) : console.log(line)),
    result: (value) => {
      if (json) console.log(JSON.stringify(value));
    },
  };
}

/** The q-quantile (0..1) of a sample, by rank (no interpolation); the input is not reordered. */
export function percentile(xs: readonly number[], q: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

export const p50 = (xs: readonly number[]): number => percentile(xs, 0.5);
/** The median as the benches have always taken it (the upper one of an even sample). */
export const median = p50;
