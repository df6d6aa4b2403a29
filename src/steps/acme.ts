import { fileHoldsLine } from '../engine/checks.js';
import { emptyPlan, type Step, type StepPlan } from '../engine/types.js';
import { parseCidr } from '../net.js';
import { acmeDirectoryLabel } from '../runbook/tls-settings.js';
import { shq } from '../shell.js';
import { layout } from './common.js';
import { acmeCommand, acmeIssuedFor } from './tls.js';

// The first ACME certificate of each node (site.tls.acme), once nginx serves the challenges and the
// VIP is up: the CA's request comes to the VIP, and the node holding it answers for either node.
// Later renewals are the timer's (each node on its own schedule, a reload each, the VIP never moves).

export const acmeStep: Step = {
  id: 'acme',
  title: 'HTTPS: the certificate from the ACME CA (first issue; the timer renews)',
  appliesTo: 'all',
  dependsOn: [],
  plan(pc): StepPlan {
    const plan = emptyPlan();
    const rb = pc.runbook;
    const acme = rb.site.tls?.acme;
    if (!acme) {
      plan.notes.push('no site.tls.acme in this runbook: nothing to do');
      return plan;
    }
    const L = layout(rb);
    const vip = parseCidr(rb.vrrp.vip)!.address;
    const health = `http://${vip}:${rb.site.listen}/ha-health`;
    plan.commands.push(
      // The CA's request goes to the VIP: wait until some node answers there.
      `for i in $(seq 1 60); do curl -fsS -m 2 -o ` +
        `/dev/null ${shq(health)} && break; [ "$i" = 60 ] ` +
        `&& { echo ${shq(
          `nobody answers ${health} after 60 s: the CA could not reach the challenge`,
        )} >&2; exit 1; }; sleep 1; done`,
      // A certificate issued for other names or by another CA is replaced now, not at its renewal.
      `if [ "$(cat ${shq(`${L.acmeLiveDir}/issued-for`)} 2>/dev/null)" = ${shq(acmeIssuedFor(pc))} ]; then force=; ` +
        `else force=--force; fi
${acmeCommand(pc)} $force`,
    );
    plan.notes.push(`issued by ${acmeDirectoryLabel(acme.directory)}`);
    return plan;
  },
  check(ctx) {
    const acme = ctx.runbook.site.tls?.acme;
    if (!acme) return 'true';
    const L = layout(ctx.runbook);
    return (
      `${fileHoldsLine(`${L.acmeLiveDir}/issued-for`, acmeIssuedFor(ctx))} && openssl x509 ` +
      `-checkend ${acme.renewDays * 86400} -noout -in ${shq(`${L.acmeLiveDir}/fullchain.pem`)} >/dev/null`
    );
  },
};
