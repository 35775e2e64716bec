// Makes a fresh clone runnable: installs npm dependencies (which also builds the TypeScript and the native
// kernels) when they are missing or older than package-lock.json, and Debian packages the tests need.
// Plain Node with no dependencies, because it runs before any are installed.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));

function run(cmd, cmdArgs) {
  process.stderr.write(`[setup] ${cmd} ${cmdArgs.join(' ')}\n`);
  const r = spawnSync(cmd, cmdArgs, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    process.stderr.write(`[setup] '${cmd} ${cmdArgs.join(' ')}' failed with exit code ${r.status}\n`);
    process.exit(r.status ?? 1);
  }
}

function mtime(p) {
  return existsSync(p) ? statSync(p).mtimeMs : 0;
}

// Debian packages for the test suite (services the tests start themselves). Installed only when missing.
const APT_FOR_TESTS = { '/usr/bin/promtool': 'prometheus' };

if (args.has('--test')) {
  const missing = Object.entries(APT_FOR_TESTS).filter(([bin]) => !existsSync(bin)).map(([, pkg]) => pkg);
  if (missing.length > 0) {
    // As root run apt-get directly; otherwise through sudo when it is there (non-interactive).
    const asRoot = process.getuid?.() === 0;
    const hasSudo = !asRoot && spawnSync('sudo', ['-n', 'true']).status === 0;
    if (!asRoot && !hasSudo) {
      process.stderr.write(`[setup] tests need Debian packages: ${missing.join(' ')} — run as root, allow sudo, or install them\n`);
      process.exit(1);
    }
    const apt = (args) => (asRoot ? run('apt-get', args) : run('sudo', ['-n', 'apt-get', ...args]));
    apt(['update', '-qq']);
    apt(['install', '-y', '-qq', '--no-install-recommends', ...missing]);
  }
}

const stamp = join(root, 'node_modules', '.package-lock.json');
if (mtime(stamp) < mtime(join(root, 'package-lock.json')) || mtime(stamp) < mtime(join(root, 'package.json'))) {
  run('npm', ['install', '--no-audit', '--no-fund']);
} else {
  run('npm', ['run', '--silent', 'build']);
}
