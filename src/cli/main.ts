export async function main(argv: string[]): Promise<void> {
  process.stdout.write(`butterfly ${argv.slice(2).join(' ')}\n`);
}
