import { gatewaySuites } from './helpers/gateway-suites.js';

// The Consul + OpenResty article's gateway on the nginx flavor with lua (the suites themselves are in
// helpers/gateway-suites.ts; 10b-gateway-openresty runs them on OpenResty).
gatewaySuites('nginx');
