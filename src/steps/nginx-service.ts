import { emptyPlan, type PlanContext, type Step, type StepPlan } from '../engine/types.js';
import { render } from '../render.js';
import { shq } from '../shell.js';
import { allOf, filesMatchCheck, layout } from './common.js';

export function nginxUnit(pc: PlanContext): string {
  const L = layout(pc.runbook);
  return render('nginx.service.njk', {
    flavorTitle: pc.runbook.build.flavor === 'openresty' ? 'OpenResty' : 'nginx',
    binary: L.nginxBinary,
    confFile: L.confFile,
    pidFile: L.pidFile,
    trackFile: L.trackFile,
    rlimitNofile: 65535,
    restartSec: 5,
    trackNginx: pc.runbook.keepalived.trackNginx,
  });
}

export const nginxServiceStep: Step = {
  id: 'nginx-service',
  title: 'systemd unit for nginx, enable and start',
  appliesTo: 'all',
  dependsOn: ['install'],
  disruptive: true,
  plan(pc): StepPlan {
    const L = layout(pc.runbook);
    const plan = emptyPlan();
    plan.files.push({ path: L.nginxUnit, content: nginxUnit(pc), mode: 0o644 });
    plan.commands.push(`install -d -m 0755 -o root -g root ${shq(L.keepalivedDir)} ${shq(L.trackDir)}`);
    // A running nginx is restarted only when its unit changed (limits, paths): a new binary was
    // already hot-upgraded by install, and configuration is reloaded by nginx-config.
    plan.commands.push(`unit_changed=$(systemctl show -p NeedDaemonReload --value nginx 2>/dev/null || true)
systemctl daemon-reload && systemctl enable nginx
if ! systemctl is-active --quiet nginx; then systemctl start nginx
elif [ "$unit_changed" = yes ]; then echo 'the nginx unit changed: restarting nginx'; systemctl restart nginx
else echo 'nginx runs with an unchanged unit: no restart'; fi
systemctl is-active nginx`);
    return plan;
  },
  check(ctx) {
    return allOf(filesMatchCheck(ctx), 'systemctl is-enabled --quiet nginx && systemctl is-active --quiet nginx');
  },
};
