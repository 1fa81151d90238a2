/**
 * Checks what deploy/ ships, offline (`node deploy/validate.ts`; `npm run lint` runs it):
 * - every Kubernetes manifest of deploy/kubernetes against the Kubernetes and KEDA schemas. The schemas come
 *   compiled into validators with the npm packages kubernetes-models and @kubernetes-models/keda, so nothing is
 *   downloaded at run time. Like `kubeconform -strict`, a field the schema does not know is an error too;
 * - kustomization.yaml lists files that exist;
 * - the Grafana dashboard parses, and every metric name it (or the prometheus-adapter rule) queries is one of
 *   deploy/grafana/metrics.txt.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import * as kedaV1alpha1 from '@kubernetes-models/keda/keda.sh/v1alpha1';
import * as appsV1 from 'kubernetes-models/apps/v1';
import * as autoscalingV2 from 'kubernetes-models/autoscaling/v2';
import * as policyV1 from 'kubernetes-models/policy/v1';
import * as coreV1 from 'kubernetes-models/v1';

/** A model class of kubernetes-models: `new Model(data).validate()` throws when data breaks the schema. */
interface ModelClass {
  readonly apiVersion: string;
  readonly kind: string;
  new (data: unknown): { validate(): void };
}

/** The API groups deploy/ uses; a manifest of any other apiVersion is reported, not skipped. */
const API_GROUPS: Record<string, Record<string, unknown>> = {
  v1: coreV1,
  'apps/v1': appsV1,
  'policy/v1': policyV1,
  'autoscaling/v2': autoscalingV2,
  'keda.sh/v1alpha1': kedaV1alpha1,
};

const KUSTOMIZATION = 'kustomization.yaml';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function modelFor(apiVersion: unknown, kind: unknown): ModelClass | undefined {
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') return undefined;
  const candidate: unknown = API_GROUPS[apiVersion]?.[kind];
  if (typeof candidate !== 'function') return undefined;
  const model = candidate as unknown as ModelClass;
  return model.apiVersion === apiVersion && model.kind === kind ? model : undefined;
}

/** The schema's complaints about `doc`, one line each (kubernetes-models reports `data/spec/replicas must be …`). */
function schemaErrors(model: ModelClass, doc: Json): string[] {
  try {
    new model(doc).validate();
    return [];
  } catch (err) {
    const errors = (err as { errors?: { instancePath: string; message?: string }[] }).errors;
    if (!Array.isArray(errors)) throw err;
    return errors.map((e) => `${e.instancePath || '/'}: ${e.message ?? 'invalid'}`);
  }
}

/**
 * Fields no schema constrains: the compiled validators accept unknown fields (the Kubernetes schemas do not
 * forbid additional properties), so a misspelt `terminationGracePeriodSecond` would pass. A field is known when
 * the schema rejects some value for it: each one is replaced in turn by `true` and by `[]`, which no single type
 * accepts both of; a field that takes both is one the schema does not know.
 */
function unknownFields(model: ModelClass, doc: { [key: string]: Json }): string[] {
  const found: string[] = [];
  const accepts = (): boolean => schemaErrors(model, doc).length === 0;
  const visit = (node: Json, path: string): void => {
    if (Array.isArray(node)) {
      node.forEach((item, i) => visit(item, `${path}/${i}`));
      return;
    }
    if (node === null || typeof node !== 'object') return;
    for (const key of Object.keys(node)) {
      const original = node[key]!;
      node[key] = true;
      const takesBoolean = accepts();
      node[key] = [];
      const takesArray = accepts();
      node[key] = original;
      if (takesBoolean && takesArray) found.push(`${path}/${key}`);
      else visit(original, `${path}/${key}`);
    }
  };
  visit(doc, '');
  return found;
}

/** Problems of one YAML file of Kubernetes manifests (`---`-separated), as `<file>: <what>` lines. */
export function manifestProblems(text: string, file: string): string[] {
  const problems: string[] = [];
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs)) return [`${file}: not a YAML stream`];
  docs.forEach((document, index) => {
    const where = docs.length > 1 ? `${file} (document ${index + 1})` : file;
    if (document.errors.length > 0) {
      problems.push(...document.errors.map((e) => `${where}: not valid YAML: ${e.message.split('\n')[0]}`));
      return;
    }
    const doc = document.toJS() as Json;
    if (doc === null) return;
    if (typeof doc !== 'object' || Array.isArray(doc)) {
      problems.push(`${where}: not a Kubernetes object`);
      return;
    }
    const model = modelFor(doc['apiVersion'], doc['kind']);
    if (model === undefined) {
      problems.push(`${where}: no schema for apiVersion ${String(doc['apiVersion'])} kind ${String(doc['kind'])} (deploy/validate.ts, API_GROUPS)`);
      return;
    }
    const name = typeof doc['metadata'] === 'object' && doc['metadata'] !== null && !Array.isArray(doc['metadata']) ? doc['metadata']['name'] : undefined;
    const what = `${where}: ${model.kind} ${typeof name === 'string' ? name : '(no name)'}`;
    const errors = schemaErrors(model, doc);
    if (errors.length > 0) {
      problems.push(...errors.map((e) => `${what}: ${e}`));
      return;
    }
    problems.push(...unknownFields(model, doc).map((path) => `${what}: ${path}: not a field of ${model.apiVersion} ${model.kind}`));
  });
  return problems;
}

/** Metric names in `metrics.txt`: one `<name> <counter|gauge|histogram|summary>` per line, `#` comments. */
export function readKnownMetrics(text: string): Map<string, string> {
  const known = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') continue;
    const [name, type] = line.split(/\s+/) as [string, string | undefined];
    known.set(name, type ?? 'untyped');
  }
  return known;
}

/** The conveyor_* series names a PromQL expression reads. */
export function metricNamesIn(expr: string): string[] {
  return [...new Set(expr.match(/\bconveyor_[a-zA-Z0-9_]*/g) ?? [])];
}

/** A series name of a known metric: the metric itself, or a histogram's (summary's) _bucket, _sum, _count. */
function isKnownSeries(series: string, known: Map<string, string>): boolean {
  if (known.has(series)) return true;
  const base = series.replace(/_(bucket|sum|count)$/, '');
  const type = known.get(base);
  return base !== series && (type === 'histogram' || (type === 'summary' && !series.endsWith('_bucket')));
}

/** Every PromQL expression of a Grafana dashboard: panel targets (rows included) and query variables. */
export function dashboardExpressions(dashboard: unknown): string[] {
  const exprs: string[] = [];
  const d = dashboard as { panels?: unknown[]; templating?: { list?: unknown[] } };
  const visitPanel = (p: unknown): void => {
    const panel = p as { targets?: { expr?: unknown }[]; panels?: unknown[] };
    for (const t of panel.targets ?? []) if (typeof t.expr === 'string') exprs.push(t.expr);
    for (const inner of panel.panels ?? []) visitPanel(inner);
  };
  for (const p of d.panels ?? []) visitPanel(p);
  for (const v of d.templating?.list ?? []) {
    const q = (v as { type?: string; query?: unknown }).query;
    if ((v as { type?: string }).type !== 'query') continue;
    if (typeof q === 'string') exprs.push(q);
    else if (typeof q === 'object' && q !== null && typeof (q as { query?: unknown }).query === 'string') exprs.push((q as { query: string }).query);
  }
  return exprs;
}

/** Problems of a Grafana dashboard's JSON: it parses, has panels, and queries only known metrics. */
export function dashboardProblems(text: string, file: string, known: Map<string, string>): string[] {
  let dashboard: unknown;
  try {
    dashboard = JSON.parse(text);
  } catch (err) {
    return [`${file}: not valid JSON: ${(err as Error).message}`];
  }
  const exprs = dashboardExpressions(dashboard);
  if (exprs.length === 0) return [`${file}: no panel queries found`];
  return unknownMetricProblems(exprs, file, known);
}

function unknownMetricProblems(exprs: readonly string[], file: string, known: Map<string, string>): string[] {
  const unknown = new Set(exprs.flatMap(metricNamesIn).filter((name) => !isKnownSeries(name, known)));
  return [...unknown].map((name) => `${file}: queries ${name}, which is not in deploy/grafana/metrics.txt`);
}

/** The PromQL of a prometheus-adapter configuration (seriesQuery and metricsQuery of every rule). */
function adapterExpressions(configYaml: string): string[] {
  const config = parseYaml(configYaml) as Record<string, { seriesQuery?: string; metricsQuery?: string }[] | undefined>;
  return ['rules', 'externalRules', 'resourceRules'].flatMap((key) =>
    (Array.isArray(config?.[key]) ? config[key] : []).flatMap((r) => [r.seriesQuery ?? '', r.metricsQuery ?? '']),
  );
}

/** Every problem of deploy/ (the directory holding kubernetes/ and grafana/), as lines; empty when sound. */
export function deployProblems(deployDir: string): string[] {
  const problems: string[] = [];
  const k8sDir = join(deployDir, 'kubernetes');
  const show = (file: string): string => relative(join(deployDir, '..'), file);
  const yamlFiles = readdirSync(k8sDir).filter((f) => /\.ya?ml$/.test(f)).sort();
  for (const f of yamlFiles) {
    if (f === KUSTOMIZATION) continue;
    problems.push(...manifestProblems(readFileSync(join(k8sDir, f), 'utf8'), show(join(k8sDir, f))));
  }
  if (yamlFiles.includes(KUSTOMIZATION)) {
    const k = parseYaml(readFileSync(join(k8sDir, KUSTOMIZATION), 'utf8')) as { resources?: unknown };
    for (const r of Array.isArray(k.resources) ? k.resources : []) {
      if (!yamlFiles.includes(String(r))) problems.push(`${show(join(k8sDir, KUSTOMIZATION))}: resource ${String(r)} is not a file of ${show(k8sDir)}`);
    }
  }

  const grafanaDir = join(deployDir, 'grafana');
  const known = readKnownMetrics(readFileSync(join(grafanaDir, 'metrics.txt'), 'utf8'));
  for (const f of readdirSync(grafanaDir).filter((f) => f.endsWith('.json')).sort()) {
    problems.push(...dashboardProblems(readFileSync(join(grafanaDir, f), 'utf8'), show(join(grafanaDir, f)), known));
  }
  const adapterFile = join(k8sDir, 'prometheus-adapter-rules.yaml');
  const adapter = parseYaml(readFileSync(adapterFile, 'utf8')) as { data?: Record<string, string> };
  problems.push(...unknownMetricProblems(Object.values(adapter.data ?? {}).flatMap(adapterExpressions), show(adapterFile), known));
  return problems;
}

if (import.meta.main) {
  const deployDir = fileURLToPath(new URL('.', import.meta.url));
  const problems = deployProblems(deployDir);
  if (problems.length > 0) {
    console.error(`deploy/ has ${problems.length} problem(s):\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    process.exit(1);
  }
  console.error('[conveyor] deploy ok: Kubernetes and KEDA manifests match their schemas, dashboard metrics are known');
}
