import type { Runbook } from './schema.js';

/** Where everything lives on a node, derived from the runbook. One place, used by steps and docs. */
export function layout(rb: Runbook) {
  const prefix = rb.build.prefix;
  // OpenResty installs nginx under <prefix>/nginx.
  const nginxHome = rb.build.flavor === 'openresty' ? `${prefix}/nginx` : prefix;
  const kaPrefix = rb.keepalived.prefix;
  const kaFromSource = rb.keepalived.install === 'source';
  return {
    nginxHome,
    nginxBinary: `${nginxHome}/sbin/nginx`,
    confDir: `${nginxHome}/conf`,
    confFile: `${nginxHome}/conf/nginx.conf`,
    siteConf: `${nginxHome}/conf/conf.d/ha-site.conf`,
    pidFile: `${nginxHome}/logs/nginx.pid`,
    logDir: `${nginxHome}/logs`,
    nginxUnit: '/etc/systemd/system/nginx.service',
    buildDir: rb.build.buildDir,
    downloads: `${rb.build.buildDir}/dl`,
    srcDir: (id: string) => `${rb.build.buildDir}/src/${id}`,
    keepalivedBinary: kaFromSource ? `${kaPrefix}/sbin/keepalived` : '/usr/sbin/keepalived',
    keepalivedConf: '/etc/keepalived/keepalived.conf',
    keepalivedUnit: '/etc/systemd/system/keepalived.service',
    keepalivedDir: '/etc/keepalived',
    scriptsDir: '/etc/keepalived/scripts',
    checkScript: '/etc/keepalived/scripts/check_nginx.sh',
    notifyScript: '/etc/keepalived/scripts/notify.sh',
    witnessScript: '/etc/keepalived/scripts/check_witness.sh',
    /** Split-brain watch (arping for a second VIP holder), its unit, and the flag it leaves while it sees one. */
    splitWatchScript: '/etc/keepalived/scripts/split_watch.sh',
    splitWatchUnit: '/etc/systemd/system/ha-setup-split-watch.service',
    splitFlag: '/run/ha-setup-split-brain',
    trackDir: '/etc/keepalived/track',
    trackFile: '/etc/keepalived/track/nginx_down',
    promoteFile: '/etc/keepalived/track/promote',
    /** 1 = this node gives up the VIP (FAULT) for maintenance; works with nopreempt and without trackNginx. */
    maintenanceFile: '/etc/keepalived/track/maintenance',
    stateFile: '/run/ha-setup-vrrp-state',
    rsyslogDropIn: '/etc/rsyslog.d/01-ha-setup-keepalived.conf',
    logrotate: '/etc/logrotate.d/ha-setup-keepalived',
    luaDir: '/usr/local/share/ha-setup/lua',
    /** nginx's USR2/WINCH/QUIT binary upgrade with rollback, used by nginx-config and `ha-setup rollback`. */
    upgradeScript: '/usr/local/share/ha-setup/nginx-upgrade.sh',
    installedMarker: `${nginxHome}/.ha-setup-installed`,
    /** A new binary waits for its configuration: install leaves this, nginx-config performs the hot upgrade. */
    upgradePending: `${nginxHome}/.ha-setup-upgrade-pending`,
    /** The configuration before a deferred upgrade, put back if that upgrade fails. */
    confBeforeUpgrade: `${nginxHome}/.ha-setup-conf-before-upgrade`,
    /**
     * The configuration sbin/nginx.old ran with, kept when a new binary took over: what rollback brings back with it.
     */
    confOld: `${nginxHome}/.ha-setup-conf.old`,
    /** Connection handoff around a planned VIP move (src/verify/handoff.ts); /run: nothing survives a reboot. */
    handoffScript: '/run/ha-setup/handoff.sh',
    handoffState: '/run/ha-setup/handoff.state',
    /** site.tls.certificate's chain and key: in the conf directory, staged and tested with it. */
    tlsDir: `${nginxHome}/conf/ha-tls`,
    /** The shared secret the session ticket keys are derived from, and the keys (current, previous, next). */
    ticketSecret: '/etc/ha-setup/tls/ticket-secret',
    ticketKeysDir: '/etc/ha-setup/tls/tickets',
    ticketScript: '/usr/local/share/ha-setup/tls-ticket-keys.sh',
    /**
     * ACME: dehydrated's config and hook, its state (account, certificates, challenges), the certificate nginx serves.
     */
    acmeConfDir: '/etc/ha-setup/acme',
    acmeStateDir: '/var/lib/ha-setup/acme',
    /**
     * Where the ACME client puts http-01 tokens and nginx serves them: readable by the workers (the state dir is 0700).
     */
    acmeWebroot: '/var/lib/ha-setup/acme-webroot',
    acmeLiveDir: '/etc/ha-setup/tls/acme',
  };
}

export type Layout = ReturnType<typeof layout>;
