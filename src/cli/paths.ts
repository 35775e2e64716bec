import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root (the folder holding package.json), found from this file in src/ or dist/src/. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  return process.cwd();
}

/** Where synthesized models are cached (BUTTERFLY_CACHE overrides). */
export function modelCacheDir(): string {
  return process.env.BUTTERFLY_CACHE ?? join(packageRoot(), '.cache', 'models');
}
