/**
 * `medclip serve --workers N`: N server processes sharing one port (Node's cluster module: the primary accepts
 * connections and hands them to the workers in turn), each with its own model and its own copy of the live index
 * (each follows new versions under its own reader leases). The primary only supervises: it prints the start-up line
 * once every worker listens, replaces a worker that dies while serving, and on SIGTERM/SIGINT stops the workers (each
 * finishes its in-flight requests) and exits when they have.
 */
import cluster, { type Worker } from 'node:cluster';

/** More than this many worker exits within CRASH_WINDOW_MS stop the server instead of forking again. */
const MAX_EXITS_IN_WINDOW = 5;
const CRASH_WINDOW_MS = 60_000;

/** What a worker tells the primary once it listens. */
interface Listening {
  type: 'medclip-listening';
  line: string;
}

export function isServeWorker(): boolean {
  return cluster.isWorker;
}

/** In a worker: report the start-up line to the primary (which prints it once for all). */
export function announceListening(line: string): void {
  process.send?.({ type: 'medclip-listening', line } satisfies Listening);
}

/**
 * In the primary: fork `workers` servers (this same command), wait for all to listen (a worker failing to start ends
 * the whole start with its exit code), then supervise until a signal; resolves to the exit code.
 */
export async function runServeCluster(workers: number, log: (line: string) => void): Promise<number> {
  const live = new Set<Worker>();
  let stopping = false;
  const fork = () => {
    const w = cluster.fork();
    live.add(w);
    return w;
  };
  const started = await new Promise<{ ok: true; line: string } | { ok: false; code: number }>((resolve) => {
    let listening = 0;
    let first = '';
    for (let i = 0; i < workers; i++) {
      const w = fork();
      w.on('message', (m: Listening) => {
        if (m?.type !== 'medclip-listening') return;
        first ||= m.line;
        if (++listening === workers) resolve({ ok: true, line: first });
      });
      w.once('exit', (code) => {
        live.delete(w);
        if (listening < workers) resolve({ ok: false, code: code || 1 });
      });
    }
  });
  if (!started.ok) {
    for (const w of live) w.process.kill('SIGTERM');
    await Promise.all([...live].map((w) => new Promise((r) => w.once('exit', r))));
    return started.code;
  }
  log(`${started.line}; ${workers} worker processes`);
  // a worker that dies while serving is replaced (its clients get a reset connection; the others are untouched), unless
  // workers keep dying: then the server stops rather than fork in a loop
  const recentExits: number[] = [];
  let giveUp: (() => void) | undefined;
  const watch = (w: Worker) =>
    w.once('exit', (code, signal) => {
      live.delete(w);
      if (stopping) return;
      log(JSON.stringify({ event: 'worker-exit', pid: w.process.pid, code, signal }));
      const now = Date.now();
      recentExits.push(now);
      while (recentExits[0]! < now - CRASH_WINDOW_MS) recentExits.shift();
      if (recentExits.length > MAX_EXITS_IN_WINDOW) return giveUp?.();
      watch(fork());
    });
  for (const w of live) watch(w);
  const signal = await new Promise<NodeJS.Signals | 'crash-loop'>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
    giveUp = () => resolve('crash-loop');
  });
  if (signal === 'crash-loop')
    log(`medclip: ${recentExits.length} worker processes died within a minute; stopping the server (see the errors above)`);
  stopping = true;
  log(`medclip: ${signal}: stopping ${live.size} workers (each finishes its in-flight requests)`);
  const exits = [...live].map((w) => new Promise<number>((r) => w.once('exit', (code) => r(code ?? 0))));
  for (const w of live) w.process.kill('SIGTERM');
  const codes = await Promise.all(exits);
  return signal !== 'crash-loop' && codes.every((c) => c === 0) ? 0 : 1;
}
