import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { Lab } from './with-lab.js';

const fixtures = join(import.meta.dirname, '..', '..', 'fixtures', 'lab');

/**
 * Real services the module suites need on the lab: a backend on :9001 of both nodes (Python's http
 * server as a systemd unit, answering "backend <ip>:9001 ..."), and slapd on node2 with one user,
 * alice / wonderland, under ou=people,dc=ha,dc=lab. Idempotent.
 */
export async function installModuleServices(lab: Lab): Promise<void> {
  const backend = readFileSync(join(fixtures, 'backend.py'), 'utf8');
  await Promise.all(
    [0, 1].map(async (i) => {
      const ip = lab.state.nodes[i].ip;
      const r = await lab.ssh(
        i,
        [
          'set -e',
          'export DEBIAN_FRONTEND=noninteractive',
          'apt-get update -q >/dev/null',
          i === 1
            ? `printf '%s\\n' 'slapd slapd/internal/adminpw password labadmin' ` +
              `'slapd slapd/internal/generated_adminpw password labadmin' 'slapd slapd/password1 password labadmin' ` +
              `'slapd slapd/password2 password labadmin' 'slapd slapd/domain string ha.lab' ` +
              `'slapd shared/organization string ha-lab' | debconf-set-selections
             apt-get install -y -q --no-install-recommends python3 slapd ldap-utils >/dev/null`
            : 'apt-get install -y -q --no-install-recommends python3 >/dev/null',
          `cat > /usr/local/bin/lab-backend.py <<'PY'\n${backend}PY`,
          `printf '[Service]\\nExecStart=/usr/bin/python3 /usr/local/bin/lab-backend.py ${ip} 9001\\n' > ` +
            `/etc/systemd/system/lab-backend.service`,
          'systemctl daemon-reload && systemctl restart lab-backend',
        ].join('\n'),
      );
      expect(r.code, r.stderr).toBe(0);
    }),
  );
  const ldif = [
    'dn: ou=people,dc=ha,dc=lab',
    'objectClass: organizationalUnit',
    'ou: people',
    '',
    'dn: uid=alice,ou=people,dc=ha,dc=lab',
    'objectClass: inetOrgPerson',
    'uid: alice',
    'cn: Alice',
    'sn: Lab',
    'userPassword: wonderland',
    '',
  ].join('\n');
  // Already there (a suite before this one added it): ldapadd exits 68, which is fine.
  const ldap = await lab.ssh(
    1,
    `ldapadd -x -H ldap://127.0.0.1 -D cn=admin,dc=ha,dc=lab -w labadmin <<'LDIF'\n${ldif}LDIF`,
  );
  expect([0, 68], ldap.stderr).toContain(ldap.code);
}

/**
 * No nginx worker outlives its master: on a host systemd kills the rest of a crashed unit's cgroup,
 * and the lab's nodes (each in its own cgroup) must do the same, or orphaned workers would keep
 * answering on the reuseport sockets with an old configuration beside the restarted master. Called
 * by the suites that follow a crash test.
 */
export async function expectNoOrphanNginx(lab: Lab): Promise<void> {
  for (const i of [0, 1]) {
    const r = await lab.ssh(
      i,
      'main=$(systemctl show -p MainPID --value nginx); for p in $(pgrep -x nginx); ' +
        'do [ "$p" != "$main" ] && [ "$(ps -o ppid= -p "$p" | tr -d " ")" = 1 ] && ' +
        'ps -o pid=,args= -p "$p"; done; true',
    );
    expect(r.stdout.trim(), `orphaned nginx processes on node${i + 1}`).toBe('');
  }
}
