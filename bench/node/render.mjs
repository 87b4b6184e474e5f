// Peer for bench/: render parameters to a shell env file with the AWS SDK for JavaScript
// v3 (@aws-sdk/client-ssm, pinned by package-lock.json; scripts/setup-node bench/node).
//
//   node bench/node/render.mjs --path /app/prod/ [--param KEY=NAME ...] --output FILE
//
// --path: GetParametersByPath (Recursive, WithDecryption) through the SDK's paginator;
//         key = name relative to the path in UPPER_SNAKE.
// --param: GetParameters (WithDecryption), 10 names per call, the calls in parallel.
// Writes KEY='value' lines like bench/boto3_render.py (temp file, fsync, 0400, rename).
// AWS settings come from the environment (AWS_ENDPOINT_URL, AWS_REGION, credentials).
import { SSMClient, GetParametersCommand, paginateGetParametersByPath } from "@aws-sdk/client-ssm";
import fs from "node:fs";
import path from "node:path";

const paths = [], params = [];
let output = null;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const [flag, value] = [argv[i], argv[i + 1]];
  if (flag === "--path") paths.push(value);
  else if (flag === "--param") params.push(value);
  else if (flag === "--output") output = value;
  else throw new Error(`unknown flag ${flag}`);
}
if (!output) throw new Error("--output is required");

const upperSnake = (rel) => {
  const key = rel.replace(/[^A-Za-z0-9]+/g, "_").replace(/^_+|_+$/g, "").toUpperCase();
  return /^[0-9]/.test(key) ? "_" + key : key;
};
const quote = (v) => "'" + v.replaceAll("'", "'\\''") + "'";

const ssm = new SSMClient({});
const values = new Map();
for (const p of paths) {
  const prefix = p.replace(/\/+$/, "") + "/";
  const pages = paginateGetParametersByPath({ client: ssm }, { Path: p, Recursive: true, WithDecryption: true });
  for await (const page of pages) {
    for (const q of page.Parameters ?? []) {
      values.set(upperSnake(q.Name.startsWith(prefix) ? q.Name.slice(prefix.length) : q.Name), q.Value);
    }
  }
}
const keyOf = new Map(params.map((s) => { const i = s.indexOf("="); return [s.slice(i + 1), s.slice(0, i)]; }));
const names = [...keyOf.keys()];
const batches = [];
for (let i = 0; i < names.length; i += 10) batches.push(names.slice(i, i + 10));
const answers = await Promise.all(batches.map((Names) => ssm.send(new GetParametersCommand({ Names, WithDecryption: true }))));
for (const a of answers) {
  if ((a.InvalidParameters ?? []).length) throw new Error(`not found: ${a.InvalidParameters.join(", ")}`);
  for (const q of a.Parameters) values.set(keyOf.get(q.Name), q.Value);
}

const out = path.resolve(output);
const tmp = path.join(path.dirname(out), `.tmp-${process.pid}`);
const fd = fs.openSync(tmp, "wx", 0o600);
try {
  fs.writeSync(fd, [...values.keys()].sort().map((k) => `${k}=${quote(values.get(k))}\n`).join(""));
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.chmodSync(tmp, 0o400);
  fs.renameSync(tmp, out);
} catch (e) {
  fs.rmSync(tmp, { force: true });
  throw e;
}
