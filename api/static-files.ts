/** A fixed set of static files served by name: read on first request and kept (a failed read is retried next time). */
import { readFile } from 'node:fs/promises';

export type StaticFile = { body: Uint8Array<ArrayBuffer>; type: string };

/** `types` names the files and their content types; `locate` says where a name is on disk. */
export function staticFiles(
  types: Record<string, string>,
  locate: (name: string) => string | URL,
): (name: string) => Promise<StaticFile | undefined> {
  const loaded = new Map<string, Promise<Uint8Array<ArrayBuffer>>>();
  return async (name) => {
    const type = Object.hasOwn(types, name) ? types[name] : undefined;
    if (!type) return undefined;
    let p = loaded.get(name);
    if (!p) {
      p = readFile(locate(name)).then((b) => new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));
      p.catch(() => loaded.delete(name));
      loaded.set(name, p);
    }
    return { body: await p, type };
  };
}
