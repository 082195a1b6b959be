/**
 * A serving process that follows its index bundle: when a writer publishes a new version (`CURRENT` moves on, or
 * the S3 manifest's ETag changes), the next requests are answered from it, while a request that started on the old
 * version finishes there. Nothing is read from a folder that can go: each version in use is held by a reader lease
 * (core/bundle/reader-leases.ts), taken before it is loaded and given back once its last request has finished, and writers
 * never prune a leased version.
 *
 *   const live = await LiveSearch.open({ location: 'indexes/big', open: (dir) => loadService(dir) });
 *   live.follow();                              // Node: watch CURRENT, poll every second as a fallback
 *   await live.refreshIfDue(30_000);             // Lambda: at most every 30 s, on a request
 *   const { service, release } = live.acquire(); // per request: one version from start to end
 *
 * A version that fails to load (another model's vectors, a corrupt file) is logged once and skipped; the process
 * keeps serving the version it has and tries that one again only after RETRY_FAILED_MS or when CURRENT moves on.
 */
import { existsSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { currentName, currentVersion, ROOT_VERSION, takeLease, type ReaderLease, IndexError } from '../bundle/index.ts';
import type { SearchService } from './search-service.ts';

/** The service a request uses, and the call that says the request is done with it. */
export interface ServiceHandle {
  readonly service: SearchService;
  release(): void;
}

/** Where requests get their service: fixed, or following a bundle's versions. */
export interface ServiceSource {
  acquire(): ServiceHandle;
  /** The service new requests get now. */
  current(): SearchService;
}

/** A service that never changes (tests, benches, a pinned deployment). */
export function fixedSource(service: SearchService): ServiceSource {
  return { acquire: () => ({ service, release: () => {} }), current: () => service };
}

export interface LiveSearchOptions {
  /** The bundle location: a folder with CURRENT and version folders (or a folder from before versions). */
  location: string;
  /** The version folder to serve now; default the one `location`'s CURRENT names (S3: the fetched copy). */
  locate?: () => Promise<string>;
  /** Load a version folder into a service (the caller's model, options and image reader). */
  open: (versionDir: string) => Promise<SearchService>;
  /** Structured events (reloads, failures): version numbers and folder names, never content. */
  log?: (event: Record<string, unknown>) => void;
}

interface Generation {
  service: SearchService;
  dir: string;
  lease: ReaderLease;
  refs: number;
  retired: boolean;
}

/** A version that failed to load is tried again after this long (or as soon as CURRENT names another). */
export const RETRY_FAILED_MS = 30_000;

/** The lease that protects a version folder: on its bundle location, or on a legacy folder's own files. */
async function leaseFor(dir: string): Promise<ReaderLease> {
  const parent = dirname(dir);
  const inParent = await currentName(parent).catch(() => undefined);
  return inParent !== undefined ? takeLease(parent, basename(dir)) : takeLease(dir, ROOT_VERSION);
}

export class LiveSearch implements ServiceSource {
  private gen!: Generation;
  private running?: Promise<boolean>;
  private again = false;
  private failed?: { dir: string; at: number };
  private lastCheck = 0;
  private watcher?: FSWatcher;
  private poll?: NodeJS.Timeout;
  private closed = false;

  private constructor(private readonly o: LiveSearchOptions) {}

  /** Load the live version (leased) and return a source serving it. */
  static async open(o: LiveSearchOptions): Promise<LiveSearch> {
    const live = new LiveSearch(o);
    live.lastCheck = Date.now();
    const dir = await live.locate();
    const lease = await leaseFor(dir);
    try {
      live.gen = { service: await o.open(dir), dir, lease, refs: 0, retired: false };
    } catch (err) {
      await lease.release();
      throw err;
    }
    return live;
  }

  private async locate(): Promise<string> {
    if (this.o.locate) return this.o.locate();
    const dir = await currentVersion(this.o.location, 'manifest.json');
    if (!dir) throw new IndexError(`${this.o.location}: no manifest.json (not an index bundle)`);
    return dir;
  }

  acquire(): ServiceHandle {
    const g = this.gen;
    g.refs++;
    let done = false;
    return {
      service: g.service,
      release: () => {
        if (done) return;
        done = true;
        if (--g.refs === 0 && g.retired) void g.lease.release();
      },
    };
  }

  current(): SearchService {
    return this.gen.service;
  }

  /** The version folder being served. */
  get versionDir(): string {
    return this.gen.dir;
  }

  /** Serve the live version if it moved on; true when this call swapped. Calls are serialised. */
  refresh(): Promise<boolean> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      let swapped = false;
      do {
        this.again = false;
        swapped = (await this.refreshOnce()) || swapped;
      } while (this.again && !this.closed);
      return swapped;
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async refreshOnce(): Promise<boolean> {
    let dir: string;
    try {
      dir = await this.locate();
    } catch (err) {
      this.o.log?.({ event: 'index-check-failed', error: (err as Error).message });
      return false;
    }
    if (dir === this.gen.dir || this.closed) return false;
    if (this.failed?.dir === dir && Date.now() - this.failed.at < RETRY_FAILED_MS) return false;
    const t0 = performance.now();
    const lease = await leaseFor(dir);
    // pruned between reading CURRENT and taking the lease: the next check sees the newer version
    if (!existsSync(join(dir, 'manifest.json'))) {
      await lease.release();
      return false;
    }
    let service: SearchService;
    try {
      service = await this.o.open(dir);
    } catch (err) {
      await lease.release();
      this.failed = { dir, at: Date.now() };
      this.o.log?.({ event: 'index-reload-failed', version: basename(dir), error: (err as Error).message });
      return false;
    }
    if (this.closed) {
      await lease.release();
      return false;
    }
    const old = this.gen;
    this.gen = { service, dir, lease, refs: 0, retired: false };
    this.failed = undefined;
    old.retired = true;
    if (old.refs === 0) await old.lease.release();
    const h = service.health();
    this.o.log?.({
      event: 'index-reloaded',
      version: h.index.version,
      images: h.index.images,
      reports: h.index.reports,
      ms: Math.round(performance.now() - t0),
    });
    return true;
  }

  /**
   * Node: follow the location. A watch on the folder sees CURRENT replaced at once; a poll every `pollMs` catches
   * what a watch misses (network file systems, a watch that failed to start). Timers do not keep the process alive.
   */
  follow(o: { pollMs?: number } = {}): this {
    const kick = () => void this.refresh().catch(() => {});
    try {
      this.watcher = watch(this.o.location, { persistent: false }, (_event, name) => {
        if (name === null || String(name) === 'CURRENT') kick();
      });
      this.watcher.on('error', () => this.watcher?.close());
    } catch {
      this.watcher = undefined; // the poll still follows
    }
    this.poll = setInterval(kick, o.pollMs ?? 1000);
    this.poll.unref();
    return this;
  }

  /** Lambda: check for a new version when the last check is at least `everyMs` old (0: never). */
  async refreshIfDue(everyMs: number): Promise<void> {
    if (everyMs <= 0 || Date.now() - this.lastCheck < everyMs) return;
    this.lastCheck = Date.now();
    await this.refresh();
  }

  /** Stop following; the lease of the version in use is given back. */
  async close(): Promise<void> {
    this.closed = true;
    this.watcher?.close();
    if (this.poll) clearInterval(this.poll);
    await this.running?.catch(() => {});
    this.gen.retired = true;
    await this.gen.lease.release();
  }
}
