/** File-system failures as one line that names the file (Node's own messages often do not, e.g. ENOSPC on write). */
const REASONS: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOENT: 'no such file or folder',
  EISDIR: 'is a folder',
  ENOTDIR: 'a parent is not a folder',
  EMFILE: 'too many open files',
  EIO: 'input/output error',
  EFBIG: 'file too large',
};

export function fsErrorReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return (code && REASONS[code]) ?? code ?? (err as Error | undefined)?.message ?? String(err);
}

/** True for errors thrown by the file system (they carry an errno code). */
export function isFsError(err: unknown): err is NodeJS.ErrnoException {
  return typeof (err as NodeJS.ErrnoException | undefined)?.code === 'string' && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}
