import type { Command } from 'commander';
import { InvalidInputError } from '../errors.js';
import { grayKeys, grayTarget, readGrayRules, type GrayAction, GRAY_ACTIONS, grayCommands } from '../gray/rules.js';
import { redisPipeline } from '../gray/redis.js';
import { dirname } from 'node:path';
import { loadRunbook } from '../runbook/io.js';
import { readSiteFiles } from '../runbook/site-files.js';
import { resolveSecret, secretNotSetError } from '../runbook/secrets.js';
import type { CliContext } from './context.js';

export function registerGray(program: Command, ctx: CliContext): void {
  program
    .command('gray')
    .description(
      'gray release rules in Redis (site.gray): which clients the canary upstream gets; ' +
        'nginx picks changes up within site.gray.refresh, no reload',
    )
    .argument('<runbook>', 'runbook file')
    .argument('[action]', `${GRAY_ACTIONS.join(', ')}`, 'status')
    .argument(
      '[value]',
      'IPv4 address or CIDR (add-ip, remove-ip), header or cookie value (add-value, remove-value), 0-100 (percent)',
    )
    .option(
      '--redis <host:port>',
      'reach Redis at this address from here (default: site.gray.redis.address, as the nodes reach it)',
    )
    .option('--json', 'status as JSON')
    .addHelpText(
      'after',
      [
        '',
        'Rules (any match sends a request to site.gray.canary; everything else goes to site.gray.stable):',
        '  add-ip 10.1.2.3 | add-ip 10.1.0.0/16     clients by address',
        '  add-value tester1                        requests whose site.gray.header (or cookie) has this value',
        '  percent 5                                5% of the other clients, ' +
          'by a stable hash of the client (or cookie)',
        '  clear                                    no rules: everything to stable',
      ].join('\n'),
    )
    .action(
      async (file: string, action: string, value: string | undefined, opts: { redis?: string; json?: boolean }) => {
        if (!GRAY_ACTIONS.includes(action as GrayAction))
          throw new InvalidInputError(`unknown action "${action}": choose one of ${GRAY_ACTIONS.join(', ')}`);
        const { path, runbook } = loadRunbook(file);
        const g = runbook.site.gray;
        if (!g)
          throw new InvalidInputError(`${file} has no site.gray: gray release is not configured`, [
            'add site.gray (redis, stable, canary) to the runbook and apply it',
          ]);
        let password: string | undefined;
        if (g.redis.passwordEnv) {
          password = resolveSecret(g.redis.passwordEnv, path, runbook.name);
          if (password === undefined)
            throw secretNotSetError(
              { name: g.redis.passwordEnv, field: 'site.gray.redis.passwordEnv' },
              path,
              runbook.name,
            );
        }
        // The same CA file the nodes trust (read as apply reads it: beside the runbook).
        const ca = g.redis.tls?.caFile ? readSiteFiles(runbook, dirname(path)).ca[g.redis.tls.caFile] : undefined;
        const target = grayTarget(g, opts.redis, password, ca);
        const keys = grayKeys(g.key);
        const commands = grayCommands(keys, action as GrayAction, value);
        if (commands.length > 0) await redisPipeline(target, commands);
        const rules = await readGrayRules(target, keys);
        if (opts.json) {
          ctx.print(
            JSON.stringify(
              {
                redis: `${target.host}:${target.port}/${target.db}`,
                key: g.key,
                stable: g.stable,
                canary: g.canary,
                ...rules,
              },
              null,
              2,
            ),
          );
        } else {
          if (action !== 'status') ctx.print(`${action}${value !== undefined ? ` ${value}` : ''}: done`);
          ctx.print(`gray release in Redis ${target.host}:${target.port} db ${target.db}, keys ${g.key}:*`);
          // A rule set can hold tens of thousands of entries: the first ones and the count (--json has all).
          const some = (xs: string[]) =>
            xs.length === 0
              ? '(none)'
              : xs.length <= 20
                ? xs.join(', ')
                : `${xs.slice(0, 20).join(', ')} ... (${xs.length} in all)`;
          ctx.print(
            `  to ${g.canary} (canary): ips ${some(rules.ips)}; ` +
              `${g.header} or ${g.cookie ? `cookie ${g.cookie}` : 'no cookie'} values ${some(rules.values)}; ` +
              `${rules.percent}% of the rest`,
          );
          ctx.print(`  everything else to ${g.stable} (stable); the nodes read the rules every ${g.refresh} s`);
        }
        ctx.result = 0;
      },
    );
}
