import { osProfile } from '../engine/os-profile.js';
import { emptyPlan, type PlanContext, type Step, type StepPlan } from '../engine/types.js';
import { render } from '../render.js';
import { allOf, filesMatchCheck, keepalivedEnvFile, layout } from './common.js';

export function loggingFiles(pc: PlanContext) {
  const rb = pc.runbook;
  const L = layout(rb);
  const facilityNumber = Number(rb.logging.facility.replace('local', ''));
  return [
    { path: keepalivedEnvFile(pc.facts), content: render('keepalived.env.njk', { facilityNumber }), mode: 0o644 },
    {
      path: L.rsyslogDropIn,
      content: render('rsyslog-keepalived.conf.njk', {
        facility: rb.logging.facility,
        logFile: rb.logging.keepalivedLog,
      }),
      mode: 0o644,
    },
    {
      path: L.logrotate,
      content: render('logrotate-keepalived.njk', { logFile: rb.logging.keepalivedLog }),
      mode: 0o644,
    },
  ];
}

export const loggingStep: Step = {
  id: 'logging',
  title: 'keepalived logs to its own file (rsyslog local0, logrotate)',
  appliesTo: 'all',
  dependsOn: [],
  disruptive: true,
  plan(pc): StepPlan {
    const plan = emptyPlan();
    plan.files.push(...loggingFiles(pc));
    plan.commands.push(`command -v rsyslogd >/dev/null || ${osProfile(pc.facts).install(['rsyslog'])}`);
    plan.commands.push('systemctl enable rsyslog >/dev/null 2>&1 || true; systemctl restart rsyslog');
    // keepalived reads its options only at start.
    plan.commands.push('if systemctl is-active --quiet keepalived; then systemctl restart keepalived; fi');
    return plan;
  },
  check(ctx) {
    return allOf(filesMatchCheck(ctx), 'systemctl is-active --quiet rsyslog');
  },
};
