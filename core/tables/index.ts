/** Input tables: image tables (paths, labels, view, source, split) and report tables (findings, impression). The only way in from outside this folder. */
export * from './image-table.ts';
export * from './reports.ts';
export * from './tables.ts';
