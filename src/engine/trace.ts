/** `--verbose` / `--debug`: remote commands (and with debug, read-only probes and output) as they run. */
export const remoteTrace: { level: 0 | 1 | 2; sink: (line: string) => void } = {
  level: 0,
  sink: (l) => process.stderr.write(`${l}\n`),
};
