import { gatewaySuites } from './helpers/gateway-suites.js';

// The gateway suites on the OpenResty build 10-openresty leaves (configuration only, no build): the
// Consul-driven upstreams, the active health check and gray release with OpenResty's bundled
// lua-nginx-module, LuaJIT, cjson and lua-resty-core.
gatewaySuites('openresty');
