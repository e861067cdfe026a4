// Validates saved HTTP exchanges against an OpenAPI 3.0 document with Ajv (an independent
// JSON Schema validator), as a client generated from the document would read them.
//
// usage: node validate.mjs --spec FILE [--shared-only] [--coverage] [--closed] EXCHANGES.json
//   FILE          an OpenAPI 3.0 document, JSON or YAML
//   EXCHANGES     [{"method", "url", "status", "content_type", "body", "dagd_only"}] as saved by
//                 the test
//   --shared-only skip exchanges whose path and method the document does not describe, and those
//                 marked dagd_only (a document of another server, e.g. Airflow's, checked on
//                 what both serve)
//   --coverage    fail when an operation of the document has no exchange
//   --closed      objects of the document's schemas may hold no property they do not list
// Every exchange must match an operation, a documented status (or "default") and, for JSON, the
// response schema. Prints one line per problem and a summary; exits 1 on any problem.
//
// OpenAPI 3.0 schemas are not JSON Schema: `nullable: true` is turned into an added "null" type
// (also beside a $ref, as the pydantic models behind Airflow's document mean it), and the
// keywords Ajv does not know (example, xml, ...) are ignored.
import fs from 'node:fs';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import YAML from 'yaml';

const args = process.argv.slice(2);
let specPath = null;
let sharedOnly = false;
let coverage = false;
let closed = false;
const files = [];
for (let i = 0; i < args.length; ++i) {
  if (args[i] === '--spec') specPath = args[++i];
  else if (args[i] === '--shared-only') sharedOnly = true;
  else if (args[i] === '--coverage') coverage = true;
  else if (args[i] === '--closed') closed = true;
  else files.push(args[i]);
}
if (!specPath || files.length !== 1) {
  console.error('usage: node validate.mjs --spec FILE [--shared-only] [--coverage] [--closed] EXCHANGES.json');
  process.exit(2);
}

const specText = fs.readFileSync(specPath, 'utf8');
const spec = specPath.endsWith('.json') ? JSON.parse(specText) : YAML.parse(specText);
const exchanges = JSON.parse(fs.readFileSync(files[0], 'utf8'));

// --- OpenAPI 3.0 schema → JSON Schema 2020-12 ------------------------------------------------

function convert(schema) {
  if (Array.isArray(schema)) return schema.map(convert);
  if (schema === null || typeof schema !== 'object') return schema;
  const out = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'nullable' || key === 'example' || key === 'xml' || key === 'externalDocs') continue;
    if (key === '$ref') {
      out.$ref = value.replace('#/components/schemas/', '#/$defs/');
    } else if (key === 'properties' || key === 'patternProperties') {
      out[key] = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, convert(v)]));
    } else {
      out[key] = convert(value);
    }
  }
  if (closed && out.type === 'object' && out.properties && out.additionalProperties === undefined) {
    out.additionalProperties = false;
  }
  if (schema.nullable === true) {
    if (out.$ref || out.anyOf || out.oneOf || out.allOf || out.type === undefined) {
      const { title, description, default: def, ...rest } = out;
      const wrapped = { anyOf: [rest, { type: 'null' }] };
      if (title !== undefined) wrapped.title = title;
      if (description !== undefined) wrapped.description = description;
      if (def !== undefined) wrapped.default = def;
      return wrapped;
    }
    out.type = Array.isArray(out.type) ? [...out.type, 'null'] : [out.type, 'null'];
    if (out.enum && !out.enum.includes(null)) out.enum = [...out.enum, null];
  }
  return out;
}

const defs = {};
for (const [name, schema] of Object.entries(spec.components?.schemas ?? {})) {
  defs[name] = convert(schema);
}
const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
addFormats(ajv);
ajv.addSchema({ $id: 'spec', $defs: defs });

// --- Matching an exchange to an operation -----------------------------------------------------

const operations = [];  // {template, segments, method, op}
for (const [template, item] of Object.entries(spec.paths ?? {})) {
  for (const method of ['get', 'put', 'post', 'delete', 'patch', 'head', 'options']) {
    if (item[method]) {
      operations.push({ template, segments: template.split('/'), method: method.toUpperCase(),
                        op: item[method] });
    }
  }
}

// The operation whose template matches `path`, preferring literal segments over parameters
// from the left (so /dags/{dag_id}/details wins over a parameter in the same place).
function findOperation(method, path) {
  const segments = path.split('/');
  let best = null;
  let bestScore = null;
  for (const o of operations) {
    if (o.method !== method || o.segments.length !== segments.length) continue;
    const score = [];
    let ok = true;
    for (let i = 0; i < segments.length && ok; ++i) {
      const literal = !/^\{.*\}$/.test(o.segments[i]);
      if (literal && o.segments[i] !== segments[i]) ok = false;
      score.push(literal ? 1 : 0);
    }
    if (!ok) continue;
    if (!bestScore || score.join('') > bestScore.join('')) {
      best = o;
      bestScore = score;
    }
  }
  return best;
}

// --- Validation --------------------------------------------------------------------------------

const problems = [];
const used = new Set();
let checked = 0;
let skipped = 0;
const validators = new Map();

// A response schema refers to components as #/$defs/X of the 'spec' document.
function wrap(schema) {
  const converted = convert(schema);
  return JSON.parse(JSON.stringify(converted).replaceAll('"#/$defs/', '"spec#/$defs/'));
}

for (const ex of exchanges) {
  const url = new URL(ex.url, 'http://localhost');
  const path = url.pathname.replace(/\/$/, '');
  if (sharedOnly && ex.dagd_only) {
    ++skipped;
    continue;
  }
  const o = findOperation(ex.method, path);
  const where = `${ex.method} ${url.pathname}${url.search} → ${ex.status}`;
  if (!o) {
    if (sharedOnly) {
      ++skipped;
      continue;
    }
    problems.push(`${where}: the document has no such operation`);
    continue;
  }
  used.add(`${o.method} ${o.template}`);
  const responses = o.op.responses ?? {};
  const response = responses[String(ex.status)] ?? responses[`${String(ex.status)[0]}XX`] ??
                   responses.default;
  if (!response) {
    problems.push(`${where}: status ${ex.status} is not documented for ${o.method} ${o.template}`);
    continue;
  }
  const content = response.content ?? {};
  const type = (ex.content_type ?? '').split(';')[0].trim();
  if (Object.keys(content).length === 0) {
    ++checked;
    continue;
  }
  const media = content[type];
  if (!media) {
    problems.push(`${where}: content type '${type}' is not documented (${Object.keys(content).join(', ')})`);
    continue;
  }
  ++checked;
  if (!media.schema || type !== 'application/json') continue;
  const key = `${o.method} ${o.template} ${ex.status} ${type}`;
  if (!validators.has(key)) validators.set(key, ajv.compile(wrap(media.schema)));
  const validate = validators.get(key);
  if (!validate(ex.body)) {
    for (const e of validate.errors) {
      problems.push(`${where}: body${e.instancePath} ${e.message}` +
                    (e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : ''));
    }
  }
}

if (coverage) {
  for (const o of operations) {
    if (!used.has(`${o.method} ${o.template}`)) {
      problems.push(`${o.method} ${o.template}: no exchange exercised this operation`);
    }
  }
}

for (const p of problems) console.log(p);
console.log(`${specPath}: ${checked} responses checked, ${skipped} not in the document, ` +
            `${problems.length} problems`);
process.exit(problems.length ? 1 : 0);
