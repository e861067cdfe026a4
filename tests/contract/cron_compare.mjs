// Computes cron fire times with cron-parser (an independent cron implementation on Luxon and
// Node's own time zone data), for comparison with dagd's.
//
// usage: node cron_compare.mjs < CASES.json
//   CASES   [{"expression": "30 2 * * *", "zone": "Europe/London",
//             "start": "2026-03-01T00:00:00Z", "count": 20}]
//           expression: five fields (minute hour day-of-month month day-of-week)
//           start:      an RFC 3339 instant; fire times are strictly after it
// Prints {"tz": Node's time zone database version, "results": [...]}, a result per case in
// order: {"fires": ["2026-03-01T02:30:00Z", ...]} (instants in UTC, whole seconds) or
// {"error": "..."} when cron-parser refuses the case.
import fs from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const parser = require('cron-parser');

function FireTimes({ expression, zone, start, count }) {
  if (expression.trim().split(/\s+/).length !== 5) {
    throw new Error('expected five fields');  // cron-parser would take a seconds field too
  }
  const interval = parser.parseExpression(expression, { currentDate: new Date(start), tz: zone });
  const fires = [];
  for (let i = 0; i < count; ++i) {
    fires.push(interval.next().toDate().toISOString().replace(/\.000Z$/, 'Z'));
  }
  return fires;
}

const cases = JSON.parse(fs.readFileSync(0, 'utf8'));
const results = cases.map((c) => {
  try {
    return { fires: FireTimes(c) };
  } catch (e) {
    return { error: String(e && e.message ? e.message : e) };
  }
});
process.stdout.write(JSON.stringify({ tz: process.versions.tz ?? 'unknown', results }) + '\n');
