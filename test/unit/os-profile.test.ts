import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { assumedFacts } from '../../src/engine/facts.js';
import { osProfile } from '../../src/engine/os-profile.js';
import { resolveNodes } from '../../src/engine/nodes.js';
import type { PlanContext } from '../../src/engine/types.js';
import type { Runbook } from '../../src/runbook/schema.js';
import { validateRunbook } from '../../src/runbook/validate.js';
import { INSTALL_STEPS } from '../../src/steps/index.js';
import { offlineSources } from '../../src/engine/plan-view.js';

// pyinfra's way: facts of a node in, each step's commands out, for one release of each family and
// package manager. What must hold on every step: the node's own package manager and paths, never
// another family's.
const runbook = (name: string, edit: (d: any) => void = () => {}) => {
  const doc = parse(readFileSync(join(import.meta.dirname, '..', '..', 'runbooks', name), 'utf8'));
  edit(doc);
  return validateRunbook(doc).runbook as Runbook;
};
function stepPlans(rb: Runbook, release: string) {
  const facts = assumedFacts(release);
  const nodes = resolveNodes(rb);
  const pc: PlanContext = {
    runbook: rb,
    node: nodes[0],
    cluster: nodes,
    facts,
    sources: offlineSources(rb, { families: [facts.family] }),
    clusterFacts: {},
  };
  return Object.fromEntries(INSTALL_STEPS.map((s) => [s.id, s.plan(pc)]));
}
const text = (p: { commands: string[]; files: Array<{ content: string }> }) =>
  [...p.commands, ...p.files.map((f) => f.content)].join('\n');

describe('one OS profile per family, used by every step', () => {
  const cases: Array<[string, RegExp, RegExp[]]> = [
    ['debian12', /apt-get|dpkg/, [/\byum\b/, /\bdnf\b/, /\brpm -q\b/, /\/etc\/sysconfig\//]],
    ['el7', /\byum install\b|rpm -q/, [/apt-get/, /dpkg/, /\bdnf\b/, /\/etc\/default\/keepalived/]],
    ['el9', /\bdnf install\b|rpm -q/, [/apt-get/, /dpkg/, /\byum\b/, /\/etc\/default\/keepalived/]],
  ];
  for (const [release, own, foreign] of cases) {
    it(`${release}: every step uses this family's commands and paths only`, () => {
      // keepalived from the package too, so that step's install command is covered.
      const rb = runbook('example-openresty.yaml', (d) => {
        d.keepalived.install = 'package';
      });
      const plans = stepPlans(rb, release);
      const all = Object.values(plans).map(text).join('\n');
      expect(all).toMatch(own);
      for (const f of foreign) expect(all, `${release}: ${f}`).not.toMatch(f);
      expect(text(plans['keepalived-build'])).toContain(osProfile(assumedFacts(release)).install(['keepalived']));
      expect(text(plans.logging)).toContain(osProfile(assumedFacts(release)).install(['rsyslog']));
      expect(plans['nginx-config'].files.find((f) => f.path.endsWith('/nginx.conf'))!.content).toContain(
        `user ${osProfile(assumedFacts(release)).webUser};`,
      );
    });
  }

  it('the profile: install commands, the package database query, users and paths', () => {
    const deb = osProfile(assumedFacts('debian12'));
    const el7 = osProfile(assumedFacts('el7'));
    const el9 = osProfile(assumedFacts('el9'));
    expect(deb.missingScript(['a b'])).toBe(
      `missing=""; for p in 'a b'; do dpkg-query -W -f='\${Status}' "$p" 2>/dev/null | grep 'install ok installed' ` +
        `>/dev/null || missing="$missing $p"; done`,
    );
    expect(el7.missingScript(['x'])).toBe(
      'missing=""; for p in x; do rpm -q "$p" >/dev/null 2>&1 || missing="$missing $p"; done',
    );
    expect([deb.installMissing, el7.installMissing, el9.installMissing]).toEqual([
      'export DEBIAN_FRONTEND=noninteractive; apt-get update -q; ' +
        'apt-get install -y -q --no-install-recommends $missing',
      'yum install -y $missing',
      'dnf install -y $missing',
    ]);
    expect([deb.webUser, el9.webUser]).toEqual(['www-data', 'nobody']);
    expect([deb.keepalivedEnvFile, el9.keepalivedEnvFile]).toEqual([
      '/etc/default/keepalived',
      '/etc/sysconfig/keepalived',
    ]);
    expect(el7.epelHint).toMatch(/yum install epel-release/);
    expect(el9.unpackInto).toBeUndefined();
    expect(deb.luajit('aarch64').lib).toBe('/usr/lib/aarch64-linux-gnu');
  });
});
