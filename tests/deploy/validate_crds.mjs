// Validates one Prometheus Operator object (JSON on stdin) against the CRD schema bundled in
// the npm package @kubernetes-models/prometheus-operator. Exit 0 when valid; otherwise the
// errors on stdout and exit 1. Run with the package's node_modules as the working directory.
import { pathToFileURL } from "node:url";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const object = JSON.parse(readFileSync(0, "utf8"));
const [group, version] = String(object.apiVersion).split("/");
const modules = process.env.NODE_PATH;
const entry = join(modules, "@kubernetes-models/prometheus-operator", group, version, "index.js");
const kinds = await import(pathToFileURL(entry).href);
const Kind = kinds[object.kind];
if (typeof Kind !== "function") {
  console.log(`no schema for ${object.apiVersion} ${object.kind}`);
  process.exit(1);
}
try {
  new Kind(object).validate();
} catch (err) {
  console.log(err.message);
  process.exit(1);
}
