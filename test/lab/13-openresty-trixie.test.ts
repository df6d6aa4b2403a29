import { openrestySuite } from './helpers/openresty-suite.js';

// The same OpenResty suite once on Debian 13 nodes (fresh lab, one build with every module).
openrestySuite('trixie');
