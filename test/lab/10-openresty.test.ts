import { openrestySuite } from './helpers/openresty-suite.js';

// OpenResty switched to from the serving nginx pair, then a module added to it (two builds).
openrestySuite('bookworm');
