import { emptyPlan, type Step, type StepPlan } from '../engine/types.js';

export const startStep: Step = {
  id: 'start',
  title: 'Enable and start keepalived',
  appliesTo: 'all',
  dependsOn: ['keepalived-build'],
  disruptive: true,
  plan(): StepPlan {
    const plan = emptyPlan();
    plan.commands.push(
      'systemctl daemon-reload && systemctl enable keepalived && systemctl restart keepalived && sleep 0.5 && ' +
        'systemctl is-active keepalived',
    );
    return plan;
  },
  check() {
    return 'systemctl is-enabled --quiet keepalived && systemctl is-active --quiet keepalived';
  },
};
