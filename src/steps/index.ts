import type { Step } from '../engine/types.js';
import { acmeStep } from './acme.js';
import { buildStep } from './build.js';
import { configureStep } from './configure.js';
import { firewallStep } from './firewall.js';
import { gatewayLibsStep } from './gateway-libs.js';
import { healthCheckStep } from './health-check.js';
import { installStep } from './install.js';
import { keepalivedBuildStep } from './keepalived-build.js';
import { keepalivedConfigStep } from './keepalived-config.js';
import { loggingStep } from './logging.js';
import { nginxConfigStep } from './nginx-config.js';
import { nginxServiceStep } from './nginx-service.js';
import { packagesStep } from './packages.js';
import { patchStep } from './patch.js';
import { preflightStep } from './preflight.js';
import { keepalivedSourcesStep, sourcesStep } from './sources.js';
import { splitWatchStep } from './split-watch.js';
import { startStep } from './start.js';
import { tlsStep } from './tls.js';

/** Runs on every node before anything else; any problem stops the whole apply with one report. */
export const PREFLIGHT: Step = preflightStep;

/** The install plan, in order. The order lives here and nowhere else. */
export const INSTALL_STEPS: Step[] = [
  packagesStep,
  sourcesStep,
  patchStep,
  configureStep,
  buildStep,
  installStep,
  gatewayLibsStep,
  tlsStep,
  nginxConfigStep,
  nginxServiceStep,
  keepalivedSourcesStep,
  keepalivedBuildStep,
  healthCheckStep,
  keepalivedConfigStep,
  loggingStep,
  firewallStep,
  startStep,
  splitWatchStep,
  acmeStep,
];
